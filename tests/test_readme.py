"""The README's examples run as written, and CI runs the README's test command."""

import re

import numpy as np
import pytest
import torch
from helpers import REPO

README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_examples():
    assert len(PYTHON_BLOCKS) >= 2


def block_kind(block: str) -> str | None:
    """Which promise a block makes beyond its own asserts, checked after it ran (README.md is not edited
    for the tests: they inspect the block's namespace)."""
    if "nnx.Optimizer" in block:
        return "flax"
    if "from_jax" in block:
        return "bridge"
    if "from watson_jax.torch import LossProvider" in block:
        return "torch"
    return None


def test_readme_has_the_checked_examples():
    """Each check below has its block: a README edit cannot drop one silently."""
    kinds = [block_kind(b) for b in PYTHON_BLOCKS]
    assert sorted(k for k in kinds if k) == ["bridge", "flax", "torch"]


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(index, converted_weights, monkeypatch):
    monkeypatch.setenv("WATSON_JAX_WEIGHTS", str(converted_weights))
    block = PYTHON_BLOCKS[index]
    namespace = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the torch blocks draw their images from torch's RNG: the same ones every run
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    kind = block_kind(block)
    if kind is not None:
        CHECKS[kind](namespace, converted_weights)


def check_flax_training_loop(ns, weights_dir):
    """The loop trains: the loss of the trained model is below that of the model it started from (the
    same seed, nnx.Rngs(0), rebuilt), both without the random shift. Measured: 11714.4 → 11575.1 after
    the three Adam steps, a fall of 1.2 %; float32 noise is ~1e-6 relative, so 0.5 % is a real fall."""
    from flax import nnx

    loss_fn, images = ns["loss_fn"], ns["images"]
    start = ns["AutoEncoder"](nnx.Rngs(0))
    before = float(loss_fn(start(images), images, shift=(4, 4)))
    after = float(loss_fn(ns["model"](images), images, shift=(4, 4)))
    assert after < 0.995 * before, (before, after)
    assert np.isfinite(float(ns["value"]))


def check_torch_equals_jax(ns, weights_dir):
    """The torch loss is the JAX loss: the block's value, drawn with a random shift from torch's RNG, is
    the torch value at one of the 64 offsets (the same eager computation, bit for bit), and at every
    offset the JAX Watson-DFT of the same images equals the torch one. (The offset cannot be told from
    the value alone: on uniform noise two offsets' values can lie 1.9e-7 apart.) Measured JAX vs torch:
    ≤ 2.0e-7 relative (5 seeds × 16 offsets; float32 summation order) → 1e-6."""
    import jax
    import torch

    import watson_jax

    loss_function, x, y, value = ns["loss_function"], ns["img0"], ns["img1"], float(ns["loss"])
    offsets = np.array([(sx, sy) for sx in range(8) for sy in range(8)])
    with torch.no_grad():
        torch_values = np.array([float(loss_function(x, y, shift=tuple(o))) for o in offsets])
    assert value in torch_values
    jax_loss = watson_jax.LossProvider().get_loss_function(
        "Watson-DFT", colorspace="RGB", pretrained=True, reduction="sum", weights_dir=weights_dir
    )
    xj, yj = (np.transpose(t.numpy(), (0, 2, 3, 1)) for t in (x, y))
    at = jax.jit(lambda s: jax_loss(xj, yj, shift=(s[0], s[1])))  # one program, the offset traced
    jax_values = np.array([float(at(o)) for o in offsets])
    # measured: at most 2.0e-7 relative over 5 seeds x 16 offsets (float32 rounding), 5x room
    np.testing.assert_allclose(jax_values, torch_values, rtol=1e-6)


def check_bridge_gradient(ns, weights_dir):
    """value.backward() reached the reconstruction: a gradient of its shape, finite and not zero
    (measured: 94 % of its entries non-zero, max |g| ≈ 100)."""
    import torch

    reconstruction, value = ns["reconstruction"], ns["value"]
    assert value.ndim == 0 and torch.isfinite(value)
    grad = reconstruction.grad
    assert grad is not None and grad.shape == reconstruction.shape
    assert torch.isfinite(grad).all() and (grad != 0).any()


CHECKS = {"flax": check_flax_training_loop, "torch": check_torch_equals_jax, "bridge": check_bridge_gradient}


def test_ci_runs_the_readme_test_command():
    bash_blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))
    command = "python -m pytest -q -n 2 --dist worksteal tests"
    assert command in bash_blocks
    assert command in (REPO / ".ci" / "run").read_text()
    assert "pip install torch==2.13.0" in bash_blocks


def test_compare_example_output_is_current(converted_weights, capsys):
    """The README's compare table is what the command prints for the original samples."""
    from helpers import shared

    from watson_jax.cli import main

    block = README.split("(`python -m watson_jax compare ex_ref.png ex_p0.png`):")[1].split("```")[1]
    documented = dict(line.split() for line in block.strip().splitlines())
    samples = shared("original_samples")
    assert (
        main(
            [
                "compare",
                str(samples / "ex_ref.png"),
                str(samples / "ex_p0.png"),
                "--weights-dir",
                str(converted_weights),
            ]
        )
        == 0
    )
    printed = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    # The test weights hold random stand-ins for the ImageNet backbones, so the README documents no
    # Deeploss numbers; every other line must be there.
    assert set(printed) - set(documented) == {"Deeploss-VGG", "Deeploss-Squeeze"}
    for name, value in documented.items():
        assert float(printed[name]) == pytest.approx(float(value), rel=1e-5), name
