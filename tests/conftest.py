"""Shared fixtures. Golden files, original weights and samples are read from ../shared (never copied),
through ``helpers.shared`` (a skip naming the missing path, or a failure under WATSON_JAX_REQUIRE_SHARED).

Two virtual CPU devices are created so that the sharding test has something to shard over; this must
happen before JAX initialises its backend. The flag is appended to any XLA_FLAGS already set (a later
device-count flag wins), so that a user's own flags cannot silently skip the sharding test.
"""

import os

_DEVICE_FLAG = "--xla_force_host_platform_device_count=2"
if _DEVICE_FLAG not in os.environ.get("XLA_FLAGS", "").split():
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_DEVICE_FLAG}".strip()
# The suite never touches the network: pretrained=True without converted weights raises, as offline.
os.environ.setdefault("WATSON_JAX_OFFLINE", "1")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import shared  # noqa: E402

#: The seed of the random backbones the golden Deeploss fixtures were computed with (their 'backbone_seed').
BACKBONE_SEED = 0


def _golden_random_backbones():
    """../shared/golden/random_backbones.py, imported by path (it is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "golden_random_backbones", shared("golden", "random_backbones.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def random_backbones() -> dict:
    """The golden fixtures' deterministic random stand-ins for the ImageNet backbones:
    {'vgg16' | 'squeezenet1_1': {torchvision key 'features.<i>[.<part>].weight|bias': float32 array, OIHW}},
    in torchvision's state dict order."""
    module = _golden_random_backbones()
    return {
        "vgg16": module.vgg16_features(BACKBONE_SEED),
        "squeezenet1_1": module.squeezenet1_1_features(BACKBONE_SEED),
    }


@pytest.fixture(scope="session")
def random_backbone_checkpoints(random_backbones, tmp_path_factory) -> dict:
    """The random backbones saved like torchvision checkpoints (torch.save of a state dict), {name: path}:
    VGG16 as a features-only state dict ('features.<i>.*'; its real classifier would add 470 MB), SqueezeNet
    1.1 as a whole-model state dict, with a random classifier of torchvision's shapes that the converter
    must drop."""
    torch = pytest.importorskip("torch", reason="the checkpoints are torch pickles")
    folder = tmp_path_factory.mktemp("torchvision")
    rng = np.random.default_rng(1)
    classifiers = {
        "vgg16": {},
        "squeezenet1_1": {
            "classifier.1.weight": rng.standard_normal((1000, 512, 1, 1)).astype(np.float32),
            "classifier.1.bias": rng.uniform(-0.05, 0.05, 1000).astype(np.float32),
        },
    }
    paths = {}
    for name, state in random_backbones.items():
        paths[name] = folder / f"{name}_random.pth"
        torch.save({k: torch.from_numpy(v) for k, v in {**state, **classifiers[name]}.items()}, paths[name])
    return paths


@pytest.fixture(scope="session")
def converted_weights(tmp_path_factory, request) -> Path:
    """The original weight files converted once by the converter, as a user would, together with the random
    Deeploss backbones of the golden fixtures (vgg16_backbone.npz, squeezenet1_1_backbone.npz: converted
    from torchvision-layout state dicts through the command line, unverified) and Barron's log-partition
    table."""
    source = shared("original_weights")  # first: on a bare clone this is a skip, torch or not
    try:
        import torch  # noqa: F401
    except ImportError:
        # Not a skip: most JAX golden tests use these weights, and a run without torch would pass by
        # skipping them.
        pytest.fail(
            "the golden tests need the original .pth weights converted, which needs torch: "
            "pip install torch==2.13.0 (the project's 'torch' extra)"
        )
    from watson_jax.convert import FORMATS, convert_reference_file, import_partition_spline, main

    random_backbone_checkpoints = request.getfixturevalue("random_backbone_checkpoints")

    dest = tmp_path_factory.mktemp("weights")
    for fmt in FORMATS:
        convert_reference_file(source / fmt.reference_name, dest)
    # Barron's log-partition table, so that tests need not compute it (tests/test_adaptive.py does, once).
    import_partition_spline(source / "partition_spline.npz", dest)
    status = main(
        [
            "--vgg16",
            str(random_backbone_checkpoints["vgg16"]),
            "--squeezenet",
            str(random_backbone_checkpoints["squeezenet1_1"]),
            "--allow-unverified",
            "--dest",
            str(dest),
        ]
    )
    assert status == 0, "converting the random backbones failed"
    return dest


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a test module: the torch tests' tensors are small, and on a loaded
    2-core machine a second OpenMP thread only adds wake-up latency (torch.cos took ~8 ms a call;
    tests/test_torch_parity.py went from 40 s to 6 s). Use with ``pytestmark``."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
