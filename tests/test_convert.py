"""Tests of the weight converter (watson_jax/convert.py, convert_weights.py) and of loading weight files
(watson_jax/weights.py), including the Deeploss heads and torchvision's ImageNet backbones.

The original files are read from ../shared/original_weights (read-only, never copied into the repository);
a test that needs a modified original copies it into pytest's tmp_path first. The originals are always read
back independently with ``torch.load(weights_only=True)`` and our files with ``np.load``, so a converter
bug cannot cancel itself out. Only one JAX computation is compiled (an Adam step on 16x16 images).
Backbone tests use the golden fixtures' random backbones (tests/conftest.py), saved like torchvision
checkpoints; most edge cases use SqueezeNet 1.1 (3 MB), VGG16 (59 MB) is only converted once per session
and exported once per module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ORIGINAL_WEIGHTS, REPO, shared

from watson_jax import LossProvider, convert, weights
from watson_jax.convert import FORMATS, convert_reference_file, main
from watson_jax.errors import MissingWeightsError, WeightsError
from watson_jax.losses import deeploss

torch = pytest.importorskip("torch", reason="the converter reads and writes .pth files with torch")

NEURIPS = ORIGINAL_WEIGHTS / "neurips_pub_tag"
LPIPS_V0 = ORIGINAL_WEIGHTS / "lpips_v0.0"


@pytest.fixture(autouse=True)
def _original_weights_present(request):
    """A test that reads the original weight files (it names ORIGINAL_WEIGHTS, NEURIPS or LPIPS_V0) is
    skipped with the reason of helpers.shared when they are missing (a failure under
    $WATSON_JAX_REQUIRE_SHARED)."""
    source = inspect.getsource(request.function)
    if any(name in source for name in ("ORIGINAL_WEIGHTS", "NEURIPS", "LPIPS_V0")):
        shared("original_weights")


FMT_IDS = [f.reference_name for f in FORMATS]
SUPPORTED = {f.reference_name for f in FORMATS}
#: LPIPS's own v0.0 heads (alex.pth, squeeze.pth, vgg.pth): not Deeploss files, skipped by name.
UNSUPPORTED = sorted(p.name for p in LPIPS_V0.glob("*.pth"))
HEAD_CHANNELS = {
    "Deeploss-VGG": (64, 128, 256, 512, 512),
    "Deeploss-Squeeze": (64, 128, 256, 384, 384, 512, 512),
}
VGG = deeploss.BACKBONES["Deeploss-VGG"]
SQUEEZE = deeploss.BACKBONES["Deeploss-Squeeze"]
DFT_RGB = next(f for f in FORMATS if f.metric == "Watson-DFT" and f.colorspace == "rgb")
DFT_GRAY = next(f for f in FORMATS if f.metric == "Watson-DFT" and f.colorspace == "grey")


# -- helpers ----------------------------------------------------------------------------------------


def _original(path: Path) -> dict:
    """A reference file as {key: torch.Tensor}, in file order, read without the converter."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(state, dict)
    return state


def _ours(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """One of our .npz files as ({'a/b': array}, metadata), read without watson_jax.weights."""
    with np.load(path, allow_pickle=False) as data:
        entries = {k: data[k] for k in data.files}
    meta = {k.strip("_"): str(v) for k, v in entries.items() if k.startswith("__")}
    return {k: v for k, v in entries.items() if not k.startswith("__")}, meta


def _is_constant(key: str) -> bool:
    """Reference keys that hold constants of the loss, not parameters (docs/reference.md §9)."""
    return key.split(".")[-1] == "blocksize" or key.endswith("dct.A") or key.startswith("to_YCbCr.")


ADAPTIVE_PREFIX = ".robust_loss.adaptive_lossfun."


def _is_head(reference_key: str) -> bool:
    return reference_key.startswith("lin") and reference_key.endswith(".model.1.weight")


def _our_key(reference_key: str) -> str:
    """'ly.t_tild' → 'ly/t_tild'; the Adaptive latents drop the reference's module path; the Deeploss heads
    'lin{k}.model.1.weight' are 'lin{k}'."""
    if reference_key.startswith(ADAPTIVE_PREFIX):
        return reference_key[len(ADAPTIVE_PREFIX) :]
    if _is_head(reference_key):
        return reference_key.split(".")[0]
    return reference_key.replace(".", "/")


def _our_value(reference_key: str, value):
    """A reference tensor in our shape: the Deeploss heads (1, C, 1, 1) are (C,)."""
    return value.reshape(-1) if _is_head(reference_key) else value


def _same_bits(a, b) -> bool:
    """Same dtype, shape and bytes (so -0.0 vs 0.0 or a NaN payload would count as different)."""
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def _run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _flip_parameter_byte(src: Path, dst_dir: Path) -> tuple[Path, str]:
    """Copy ``src`` into ``dst_dir`` with the lowest byte of the last element of the tunable tensor stored
    last in the file flipped: the file still loads, but its sha256 and one parameter value change.
    Returns (copy, reference key of the changed tensor)."""
    data = bytearray(src.read_bytes())
    state = _original(src)
    spans = {}
    for key, value in state.items():
        if _is_constant(key) or value.numel() < 2:
            continue
        raw = value.numpy().tobytes()
        assert data.count(raw) == 1, key
        spans[key] = data.find(raw) + len(raw)
    key = max(spans, key=spans.get)
    end = spans[key]
    assert end > len(data) - 400, "the chosen byte is not near the end of the file"
    data[end - 4] ^= 0x01  # little-endian float32: lowest mantissa bit of the last element
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = dst_dir / src.name
    out.write_bytes(bytes(data))
    return out, key


@pytest.fixture(scope="module")
def exported(converted_weights, tmp_path_factory) -> Path:
    """The converted weights exported back with ``--to-torch``."""
    dest = tmp_path_factory.mktemp("exported")
    assert main(["--to-torch", "--source", str(converted_weights), "--dest", str(dest)]) == 0
    return dest


# -- 1. conversion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_conversion_is_bitwise_with_reference_names(fmt, converted_weights):
    """Every parameter of the converted file is the original tensor bit for bit (float32, same shape), under
    the reference's name with '.' → '/' (e.g. 'ly.t_tild' → 'ly/t_tild'); exactly the non-constant keys
    are stored, and the metadata records the source file, its sha256 and version 'current'."""
    src = ORIGINAL_WEIGHTS / fmt.reference_name
    original = _original(src)
    ours, meta = _ours(converted_weights / fmt.our_name)

    expected = {_our_key(k): _our_value(k, v) for k, v in original.items() if not _is_constant(k)}
    assert set(ours) == set(expected)
    if fmt.metric == "Adaptive":
        assert set(ours) == {"latent_alpha", "latent_scale"}
    elif fmt.metric.startswith("Deeploss"):
        channels = HEAD_CHANNELS[fmt.metric]
        assert list(original) == [f"lin{k}.model.1.weight" for k in range(len(channels))]
        assert [tuple(v.shape) for v in original.values()] == [(1, c, 1, 1) for c in channels]
        assert {k: v.shape for k, v in ours.items()} == {f"lin{k}": (c,) for k, c in enumerate(channels)}
    elif fmt.colorspace == "rgb":
        assert {"w_tild", "ly/t_tild", "lcb/alpha", "lcr/beta"} <= set(ours)
    else:
        assert {"t_tild", "alpha", "w_tild", "beta"} <= set(ours)
    for key, value in expected.items():
        assert value.dtype == torch.float32
        assert _same_bits(ours[key], value), key

    assert meta["format"] == str(weights.FORMAT_VERSION)
    assert meta["source"] == fmt.reference_name
    assert meta["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["version"] == "current"


# -- 2. round trip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_round_trip_to_torch_is_exact(fmt, exported):
    """original .pth → ours → --to-torch gives back the original state dict exactly: same keys in the same
    order, same dtypes (blocksize int64), shapes and bits, constants included. The exported file loads with
    torch.load(weights_only=True), and key set plus shapes match the original, which is what a strict
    load_state_dict into the reference model checks."""
    original = _original(ORIGINAL_WEIGHTS / fmt.reference_name)
    back = _original(exported / fmt.reference_name)

    assert list(back) == list(original)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in original.items()}
    for key, value in original.items():
        assert back[key].dtype == value.dtype, key
        assert _same_bits(back[key], value), key
    blocksizes = [k for k in back if k.split(".")[-1] == "blocksize"]
    if fmt.metric == "Adaptive":  # latents only, no constants
        assert list(back) == [ADAPTIVE_PREFIX + "latent_alpha", ADAPTIVE_PREFIX + "latent_scale"]
        return
    if fmt.metric.startswith("Deeploss"):  # heads only, no constants
        assert all(_is_head(k) for k in back) and not blocksizes
        return
    assert blocksizes and all(back[k].dtype == torch.int64 and int(back[k]) == 8 for k in blocksizes)


# -- 3. tuned weights back to the reference layout --------------------------------------------------


def test_tuned_weights_export_to_reference_layout(converted_weights, tmp_path):
    """Parameters changed in JAX (one optax Adam step on the RGB Watson-DFT loss) and saved with
    weights.save_params export with --to-torch to exactly the updated values, in the original file's key
    layout and shapes, with the constants unchanged — not the original values."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")

    loss = LossProvider().get_loss_function(
        "Watson-DFT", "RGB", deterministic=True, weights_dir=converted_weights
    )
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(kx, (2, 16, 16, 3))
    y = jax.random.uniform(ky, (2, 16, 16, 3))
    optimizer = optax.adam(1e-2)

    @jax.jit
    def step(params):
        grads = jax.grad(lambda p: loss.apply(p, x, y))(params)
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        return optax.apply_updates(params, updates), grads

    new_params, grads = step(loss.params)
    new_flat = weights.flatten(jax.tree.map(np.asarray, new_params))
    grad_flat = weights.flatten(jax.tree.map(np.asarray, grads))

    tuned = tmp_path / "tuned"
    weights.save_params(tuned / DFT_RGB.our_name, jax.tree.map(np.asarray, new_params), source="test")
    assert main(["--to-torch", "--source", str(tuned), "--dest", str(tmp_path / "torch")]) == 0

    original = _original(ORIGINAL_WEIGHTS / DFT_RGB.reference_name)
    back = _original(tmp_path / "torch" / DFT_RGB.reference_name)
    assert list(back) == list(original)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in original.items()}

    changed = []
    for key, value in original.items():
        if _is_constant(key):
            assert _same_bits(back[key], value), key
            continue
        assert _same_bits(back[key], np.asarray(new_flat[_our_key(key)], np.float32)), key
        if np.any(grad_flat[_our_key(key)] != 0):
            assert not _same_bits(back[key], value), f"{key} has a gradient but was exported unchanged"
        if not _same_bits(back[key], value):
            changed.append(key)
    # every parameter of the loss gets a gradient at this input (the test is not vacuous)
    assert len(changed) == sum(not _is_constant(k) for k in original), changed


# -- 4. sha256 verification -------------------------------------------------------------------------


def test_modified_file_refused_unless_allow_unverified(tmp_path, capsys):
    """A copy of an original with one byte of tensor data changed is refused (message names the sha256 and
    --allow-unverified, nothing written); with --allow-unverified it converts, the metadata says 'unverified'
    with the copy's sha256, and exactly that one parameter element differs from the original."""
    src = ORIGINAL_WEIGHTS / DFT_GRAY.reference_name
    modified, key = _flip_parameter_byte(src, tmp_path / "src")
    out = tmp_path / "out"

    with pytest.raises(WeightsError, match="sha256") as info:
        convert_reference_file(modified, out)
    assert "--allow-unverified" in str(info.value)

    status, stdout, stderr = _run(capsys, "--source", modified.parent, "--dest", out)
    assert status == 1
    assert "sha256" in stderr and "--allow-unverified" in stderr and DFT_GRAY.reference_name in stderr
    assert not _lines(stdout, "wrote")
    assert not (out / DFT_GRAY.our_name).exists()

    status, stdout, stderr = _run(capsys, "--source", modified.parent, "--dest", out, "--allow-unverified")
    assert status == 0, stderr
    assert len(_lines(stdout, "wrote")) == 1
    params, meta = weights.read_params(out / DFT_GRAY.our_name)
    assert meta["version"] == "unverified"
    assert meta["sha256"] == hashlib.sha256(modified.read_bytes()).hexdigest()
    assert meta["sha256"] != hashlib.sha256(src.read_bytes()).hexdigest()

    original = _original(src)
    flat = weights.flatten(params)
    for ref_key, value in original.items():
        if _is_constant(ref_key):
            continue
        if ref_key == key:
            assert np.count_nonzero(flat[_our_key(ref_key)] != value.numpy()) == 1
        else:
            assert _same_bits(flat[_our_key(ref_key)], value), ref_key


def test_garbage_file_refused_even_unverified(tmp_path, capsys):
    """Random bytes named like a known original file are refused with a WeightsError saying the file cannot
    be read, even with --allow-unverified (no traceback, exit 1, nothing written)."""
    src = tmp_path / "src"
    src.mkdir()
    garbage = src / DFT_GRAY.reference_name
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out = tmp_path / "out"

    with pytest.raises(WeightsError, match="cannot read"):
        convert_reference_file(garbage, out, allow_unverified=True)
    status, stdout, stderr = _run(capsys, "--source", src, "--dest", out, "--allow-unverified")
    assert status == 1
    assert "cannot read" in stderr and DFT_GRAY.reference_name in stderr
    assert "Traceback" not in stderr
    assert not _lines(stdout, "wrote")
    assert not out.exists() or not any(out.iterdir())


def test_state_dict_with_non_tensor_values_is_a_weights_error(tmp_path):
    """A loadable .pth whose dict holds a non-tensor value (only reachable with --allow-unverified) is
    refused with a WeightsError, not an uncaught exception."""
    path = tmp_path / DFT_GRAY.reference_name
    torch.save({"blocksize": 8, "t_tild": [1.0]}, path)
    with pytest.raises(WeightsError, match="not tensors"):
        convert_reference_file(path, tmp_path / "out", allow_unverified=True)


def test_other_version_with_allow_unverified_is_labelled_with_its_version(tmp_path):
    """--allow-unverified accepts a file of the other known version and records which version it is."""
    from watson_jax import weights as weights_io

    out = convert_reference_file(NEURIPS / DFT_GRAY.reference_name, tmp_path, allow_unverified=True)
    assert weights_io.read_params(out)[1]["version"] == "neurips"


# -- 5. versions ------------------------------------------------------------------------------------


def test_neurips_files_need_version_flag(tmp_path, capsys, converted_weights):
    """The files of the NeurIPS tag are refused by default with a message telling to pass --version neurips;
    with it they convert bit for bit (metadata version 'neurips') and their parameters differ from the
    current ones. Conversely the current files are refused under --version neurips."""
    out = tmp_path / "out"
    status, stdout, stderr = _run(capsys, "--source", NEURIPS, "--dest", out)
    assert status == 1
    assert stderr.count("--version neurips") == len(FORMATS)
    assert not _lines(stdout, "wrote")
    assert not out.exists() or not list(out.glob("*.npz"))

    status, stdout, stderr = _run(capsys, "--source", NEURIPS, "--dest", out, "--version", "neurips")
    assert status == 0, stderr
    assert len(_lines(stdout, "wrote")) == len(FORMATS)
    for fmt in FORMATS:
        ours, meta = _ours(out / fmt.our_name)
        current, _ = _ours(converted_weights / fmt.our_name)
        assert meta["version"] == "neurips"
        original = _original(NEURIPS / fmt.reference_name)
        for key, value in original.items():
            if not _is_constant(key):
                assert _same_bits(ours[_our_key(key)], _our_value(key, value)), (
                    fmt.reference_name,
                    key,
                )
        assert set(ours) == set(current)
        assert any(not _same_bits(ours[k], current[k]) for k in ours), fmt.reference_name

    status, stdout, stderr = _run(
        capsys, "--source", ORIGINAL_WEIGHTS, "--dest", tmp_path / "other", "--version", "neurips"
    )
    assert status == 1
    assert stderr.count("--version current") == len(FORMATS)


# -- 6. command line --------------------------------------------------------------------------------


def _check_conversion_output(stdout: str, dest: Path) -> None:
    wrote = _lines(stdout, "wrote")
    assert len(wrote) == len(FORMATS) == 10
    for fmt in FORMATS:
        assert sum(fmt.our_name in line and f"(from {fmt.reference_name})" in line for line in wrote) == 1
    assert not _lines(stdout, "skipped")
    assert sorted(p.name for p in ORIGINAL_WEIGHTS.glob("*.pth")) == sorted(SUPPORTED)
    assert sorted(p.name for p in dest.iterdir()) == sorted(f.our_name for f in FORMATS)


def test_cli_main_converts_all_originals(tmp_path, capsys, converted_weights):
    """main([...]) on the original folder exits 0, prints one 'wrote' line per original file (all 10,
    Deeploss heads included; nothing skipped), writes exactly those files, and they equal those of
    convert_reference_file."""
    dest = tmp_path / "dest"
    status, stdout, stderr = _run(capsys, "--source", ORIGINAL_WEIGHTS, "--dest", dest)
    assert status == 0, stderr
    assert stderr == ""
    _check_conversion_output(stdout, dest)
    for fmt in FORMATS:
        ours, _ = _ours(dest / fmt.our_name)
        reference, _ = _ours(converted_weights / fmt.our_name)
        assert set(ours) == set(reference) and all(_same_bits(ours[k], reference[k]) for k in ours)


def test_cli_script_subprocess(tmp_path):
    """The root script convert_weights.py, run as a user would, exits 0 with the same 'wrote' output and
    files."""
    dest = tmp_path / "dest"
    env = dict(os.environ, **{weights.ENV_VAR: str(tmp_path / "unused")})
    result = subprocess.run(
        [
            sys.executable,
            "convert_weights.py",
            "--source",
            str(ORIGINAL_WEIGHTS),
            "--dest",
            str(dest),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    _check_conversion_output(result.stdout, dest)
    assert not (tmp_path / "unused").exists()


def test_cli_exit_1_when_any_file_refused(tmp_path, capsys):
    """One refused file among good ones makes the exit status 1 (one error line naming it); the others are
    still written."""
    src = tmp_path / "src"
    src.mkdir()
    for fmt in FORMATS:
        if fmt is not DFT_GRAY:
            shutil.copy(ORIGINAL_WEIGHTS / fmt.reference_name, src)
    _flip_parameter_byte(ORIGINAL_WEIGHTS / DFT_GRAY.reference_name, src)
    dest = tmp_path / "dest"

    status, stdout, stderr = _run(capsys, "--source", src, "--dest", dest)
    assert status == 1
    errors = _lines(stderr, "error:")
    assert len(errors) == 1 and DFT_GRAY.reference_name in errors[0]
    assert len(_lines(stdout, "wrote")) == len(FORMATS) - 1
    assert sorted(p.name for p in dest.iterdir()) == sorted(f.our_name for f in FORMATS if f is not DFT_GRAY)


def test_cli_usage_errors(tmp_path, capsys):
    """--to-torch without --dest, conversion without --source (and no backbone option), and a backbone option
    with --to-torch are argparse usage errors (exit 2)."""
    with pytest.raises(SystemExit) as info:
        main(["--to-torch", "--source", str(tmp_path)])
    assert info.value.code == 2
    assert "--dest" in capsys.readouterr().err

    with pytest.raises(SystemExit) as info:
        main(["--dest", str(tmp_path / "dest")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--source" in err and "--vgg16" in err and "--squeezenet" in err

    with pytest.raises(SystemExit) as info:
        main(["--to-torch", "--squeezenet", "--dest", str(tmp_path / "dest")])
    assert info.value.code == 2
    assert "--squeezenet" in capsys.readouterr().err


def test_cli_no_convertible_files(tmp_path, capsys):
    """A source folder with nothing to convert — empty, only LPIPS's own v0.0 heads (lpips_v0.0/*.pth, skipped
    by name although their keys look like Deeploss heads), or (for --to-torch) no watson_jax weight files —
    exits 1 with an error naming the folder."""
    empty = tmp_path / "empty"
    empty.mkdir()
    status, stdout, stderr = _run(capsys, "--source", empty, "--dest", tmp_path / "d1")
    assert status == 1
    assert "no convertible files" in stderr and str(empty) in stderr
    assert not _lines(stdout, "wrote")

    assert UNSUPPORTED == ["alex.pth", "squeeze.pth", "vgg.pth"]
    assert list(_original(LPIPS_V0 / "vgg.pth"))[0] == "lin0.model.1.weight"
    status, stdout, stderr = _run(capsys, "--source", LPIPS_V0, "--dest", tmp_path / "d2")
    assert status == 1
    assert sorted(line.split()[1].rstrip(":") for line in _lines(stdout, "skipped")) == UNSUPPORTED
    assert "no convertible files" in stderr and not (tmp_path / "d2").exists()

    status, stdout, stderr = _run(capsys, "--to-torch", "--source", empty, "--dest", tmp_path / "d3")
    assert status == 1
    assert "no convertible files" in stderr


# -- 7. loading through the provider ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_provider_loads_converted_weights(fmt, converted_weights):
    """LossProvider.get_loss_function(pretrained=True, weights_dir=...) loads exactly the file's parameters
    (and hence the original tensors)."""
    colorspace = "RGB" if fmt.colorspace == "rgb" else "grey"
    loss = LossProvider().get_loss_function(
        fmt.metric, colorspace, pretrained=True, weights_dir=converted_weights
    )
    loaded = weights.flatten({k: v for k, v in loss.params.items()})
    ours, _ = _ours(converted_weights / fmt.our_name)
    assert set(loaded) == set(ours)
    for key in ours:
        assert _same_bits(np.asarray(loaded[key]), ours[key]), key


# -- 8. broken weight files (missing keys, shapes, NaNs and missing files: tests/test_errors.py) --------


def _load_dft_rgb(folder: Path):
    return LossProvider().get_loss_function("Watson-DFT", "RGB", pretrained=True, weights_dir=folder)


@pytest.mark.parametrize("damage", ["truncated", "random_bytes"])
def test_corrupt_npz_is_weights_error(damage, tmp_path, converted_weights):
    """A truncated converted .npz and a file of random bytes each raise a WeightsError (not a
    MissingWeightsError) that says 'corrupt' and names the file."""
    path = tmp_path / DFT_RGB.our_name
    if damage == "truncated":
        data = (converted_weights / DFT_RGB.our_name).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(WeightsError, match="corrupt") as info:
        _load_dft_rgb(tmp_path)
    assert not isinstance(info.value, MissingWeightsError)
    assert str(path) in str(info.value)


def test_partition_spline_import(tmp_path, capsys):
    """--partition-spline imports Barron's table (sha256 pinned) as the Adaptive loss's table; a modified
    file is refused unless --allow-unverified; it does not combine with --to-torch."""
    from watson_jax import partition

    status, stdout, _ = _run(
        capsys,
        "--source",
        tmp_path,
        "--dest",
        tmp_path / "out",
        "--partition-spline",
        ORIGINAL_WEIGHTS / "partition_spline.npz",
    )
    assert status == 0 and "log_partition_spline.npz" in stdout
    table = partition.read_table(tmp_path / "out" / partition.TABLE_FILE)
    with np.load(ORIGINAL_WEIGHTS / "partition_spline.npz") as original:
        assert np.array_equal(table["values"], original["values"])
        assert np.array_equal(table["tangents"], original["tangents"])
    modified = tmp_path / "partition_spline.npz"
    with np.load(ORIGINAL_WEIGHTS / "partition_spline.npz") as original:
        np.savez(
            modified,
            values=original["values"] + 1e-3,
            tangents=original["tangents"],
            x_scale=original["x_scale"],
        )
    status, _, stderr = _run(
        capsys, "--source", tmp_path, "--dest", tmp_path / "o2", "--partition-spline", modified
    )
    assert status == 1 and "--allow-unverified" in stderr
    with pytest.raises(SystemExit):
        main(["--to-torch", "--dest", str(tmp_path / "x"), "--partition-spline", str(modified)])


def test_missing_partition_spline_path(tmp_path, capsys):
    status, _, stderr = _run(
        capsys,
        "--source",
        tmp_path,
        "--dest",
        tmp_path / "o",
        "--partition-spline",
        tmp_path / "nope.npz",
    )
    assert status == 1 and "not found" in stderr and "Traceback" not in stderr


# -- 9. Deeploss heads ------------------------------------------------------------------------------


def test_head_file_with_wrong_keys_or_shapes_is_refused(tmp_path):
    """A head file (only reachable with --allow-unverified) with a missing head or a head of the wrong shape
    is refused with a WeightsError naming the file and the key."""
    name = "rgb_pnet_lin_vgg_trial0.pth"
    original = _original(ORIGINAL_WEIGHTS / name)

    missing = dict(original)
    del missing["lin4.model.1.weight"]
    torch.save(missing, tmp_path / name)
    with pytest.raises(WeightsError, match="lin4.model.1.weight") as info:
        convert_reference_file(tmp_path / name, tmp_path / "out", allow_unverified=True)
    assert name in str(info.value)

    reshaped = dict(original)
    reshaped["lin2.model.1.weight"] = original["lin2.model.1.weight"].reshape(1, 256)
    torch.save(reshaped, tmp_path / name)
    with pytest.raises(WeightsError, match=r"lin2.model.1.weight.*\(1, 256\).*\(1, 256, 1, 1\)"):
        convert_reference_file(tmp_path / name, tmp_path / "out", allow_unverified=True)

    # the SqueezeNet heads under the VGG name: seven heads, not five
    shutil.copy(ORIGINAL_WEIGHTS / "rgb_pnet_lin_squeeze_trial0.pth", tmp_path / name)
    with pytest.raises(WeightsError, match="expected exactly the keys"):
        convert_reference_file(tmp_path / name, tmp_path / "out", allow_unverified=True)
    assert not (tmp_path / "out").exists()


# -- 10. ImageNet backbones (torchvision checkpoints) ------------------------------------------------


def _torch_state(arrays: dict) -> dict:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def _params(path: Path) -> dict[str, np.ndarray]:
    return _ours(path)[0]


def _same_params(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(_same_bits(a[k], b[k]) for k in a)


def _squeeze_checkpoint(
    folder: Path, name: str, random_backbones, *, prefix: str = "features.", change=None
) -> Path:
    """The random SqueezeNet features saved as a state dict named ``name``, keys 'features.<i>.*' or, with
    prefix='', '<i>.*'; ``change`` may edit the {key: array} dict first."""
    state = {prefix + k[len("features.") :]: v for k, v in random_backbones["squeezenet1_1"].items()}
    if change is not None:
        change(state)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(_torch_state(state), folder / name)
    return folder / name


@pytest.fixture()
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache: $TORCH_HOME = tmp_path/torch_home (its hub/checkpoints folder)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert weights.torch_hub_checkpoints() == folder
    folder.mkdir(parents=True)
    return folder


def test_known_torchvision_digests_are_consistent():
    """The pinned table names exactly the checkpoints the Deeploss backbones list; each pinned digest is a
    sha256 that starts with the 8 hex digits torchvision put in the file name; one name per backbone is
    pinned in full (squeezenet1_1-f364aa15.pth is checked by its prefix only)."""
    names = {f for b in deeploss.BACKBONES.values() for f in b.torchvision_files}
    assert set(convert.TORCHVISION_SHA256) == names
    for name, digest in convert.TORCHVISION_SHA256.items():
        assert len(convert.torchvision_prefix(name)) == 8
        if digest is not None:
            assert len(digest) == 64 and int(digest, 16) >= 0
            assert digest.startswith(convert.torchvision_prefix(name)), name
    assert convert.TORCHVISION_SHA256["squeezenet1_1-f364aa15.pth"] is None
    assert all(convert.TORCHVISION_SHA256[b.torchvision_files[0]] for b in deeploss.BACKBONES.values())


@pytest.mark.parametrize("backbone", [VGG, SQUEEZE], ids=lambda b: b.name)
def test_backbone_conversion_keeps_only_the_features(
    backbone, converted_weights, random_backbones, random_backbone_checkpoints
):
    """converted_weights holds <name>_backbone.npz converted from the random torchvision-layout checkpoint:
    one {kernel, bias} per layer of Backbone.layout, kernel = the OIHW weight transposed to HWIO and bias
    the same bits; SqueezeNet's classifier is dropped; metadata: source file, its sha256, 'unverified';
    watson_jax.weights.load_backbone accepts it."""
    ours, meta = _ours(converted_weights / backbone.filename)
    random = random_backbones[backbone.name]
    assert set(ours) == {f"{layer}/{leaf}" for layer in backbone.layout for leaf in ("kernel", "bias")}
    assert len(ours) == len(random)
    for layer, shape in backbone.layout.items():
        assert ours[f"{layer}/kernel"].shape == shape
        assert _same_bits(ours[f"{layer}/kernel"], np.transpose(random[f"{layer}.weight"], (2, 3, 1, 0))), (
            layer
        )
        assert _same_bits(ours[f"{layer}/bias"], random[f"{layer}.bias"]), layer
    assert not any("classifier" in k for k in ours)
    src = random_backbone_checkpoints[backbone.name]
    if backbone is SQUEEZE:
        assert "classifier.1.weight" in _original(src)
    assert meta["source"] == src.name
    assert meta["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["version"] == "unverified"
    loaded = weights.load_backbone(backbone, converted_weights)
    assert _same_bits(loaded["features.0"]["kernel"], ours["features.0/kernel"])


def test_backbone_key_styles_give_identical_files(
    tmp_path, random_backbone_checkpoints, random_backbones, converted_weights
):
    """A whole-model state dict (features + classifier), a features-only one ('features.<i>.*') and the
    state dict of the features Sequential ('<i>.weight', '<i>.squeeze.weight', ...) convert to the same
    parameters; only the provenance metadata differs."""
    whole = random_backbone_checkpoints["squeezenet1_1"]
    features = _squeeze_checkpoint(tmp_path / "a", "features.pth", random_backbones)
    sequential = _squeeze_checkpoint(tmp_path / "b", "sequential.pth", random_backbones, prefix="")
    assert list(_original(sequential))[:3] == ["0.weight", "0.bias", "3.squeeze.weight"]
    reference = _params(converted_weights / SQUEEZE.filename)
    for i, path in enumerate((whole, features, sequential)):
        out = convert.convert_backbone(path, "squeezenet1_1", tmp_path / f"out{i}", allow_unverified=True)
        assert out == tmp_path / f"out{i}" / "squeezenet1_1_backbone.npz"
        assert _same_params(_params(out), reference), path.name
        assert _ours(out)[1]["source"] == path.name


def test_unverified_backbone_needs_allow_unverified(tmp_path, capsys, random_backbone_checkpoints):
    """A checkpoint whose sha256 is not torchvision's is refused (exit 1, the error names the file, its
    sha256, the known file names and --allow-unverified; nothing written); the flag converts it."""
    path = random_backbone_checkpoints["squeezenet1_1"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match="--allow-unverified"):
        convert.convert_backbone(path, SQUEEZE, tmp_path / "o1")
    status, stdout, stderr = _run(capsys, "--squeezenet", path, "--dest", tmp_path / "o2")
    assert status == 1
    assert str(path) in stderr and digest in stderr and "--allow-unverified" in stderr
    assert "squeezenet1_1-b8a52dc0.pth" in stderr and "Traceback" not in stderr
    assert not _lines(stdout, "wrote") and not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()

    status, stdout, stderr = _run(
        capsys, "--squeezenet", path, "--dest", tmp_path / "o2", "--allow-unverified"
    )
    assert status == 0, stderr
    assert _lines(stdout, "wrote") == [f"wrote {tmp_path / 'o2' / SQUEEZE.filename}  (from {path.name})"]


def test_pinned_digest_verifies_and_identifies_the_backbone(
    tmp_path, capsys, monkeypatch, random_backbone_checkpoints
):
    """A file whose sha256 is the pinned digest of a torchvision file converts without --allow-unverified,
    whatever its name, with version 'torchvision'; given to the other backbone's option it is refused as
    that backbone's checkpoint (even the flag does not get past the missing VGG layers)."""
    path = random_backbone_checkpoints["squeezenet1_1"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(convert.TORCHVISION_SHA256, "squeezenet1_1-b8a52dc0.pth", digest)

    status, _, stderr = _run(capsys, "--squeezenet", path, "--dest", tmp_path / "ok")
    assert status == 0, stderr
    meta = _ours(tmp_path / "ok" / SQUEEZE.filename)[1]
    assert (meta["version"], meta["sha256"], meta["source"]) == ("torchvision", digest, path.name)

    status, _, stderr = _run(capsys, "--vgg16", path, "--dest", tmp_path / "wrong")
    assert status == 1
    assert "squeezenet1_1-b8a52dc0.pth" in stderr and "not vgg16" in stderr
    status, _, stderr = _run(capsys, "--vgg16", path, "--dest", tmp_path / "wrong", "--allow-unverified")
    assert status == 1
    assert "missing key 'features.2.weight'" in stderr and "not a torchvision vgg16 checkpoint" in stderr
    assert not (tmp_path / "wrong").exists()


def test_prefix_verification_as_torch_hub(tmp_path, random_backbone_checkpoints):
    """For a known file name without a pinned full digest, a sha256 starting with the 8 hex digits of the
    name is accepted ('torchvision-prefix'), as torch hub's check_hash does; any other digest is refused."""
    path = random_backbone_checkpoints["squeezenet1_1"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    named = dataclasses.replace(SQUEEZE, torchvision_files=(f"squeezenet1_1-{digest[:8]}.pth",))
    assert named.torchvision_files[0] not in convert.TORCHVISION_SHA256
    assert convert.verify_backbone(path, named) == (digest, "torchvision-prefix")
    out = convert.convert_backbone(path, named, tmp_path)
    assert _ours(out)[1]["version"] == "torchvision-prefix"

    other = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    with pytest.raises(WeightsError, match="--allow-unverified"):
        convert.verify_backbone(path, dataclasses.replace(SQUEEZE, torchvision_files=(f"sq-{other}.pth",)))
    # the real old SqueezeNet name is checked the same way: this file does not start with f364aa15
    assert convert.verify_backbone(path, SQUEEZE, allow_unverified=True) == (digest, "unverified")


@pytest.mark.parametrize("name", SQUEEZE.torchvision_files)
def test_hub_cache_lookup(name, hub, tmp_path, capsys, random_backbones):
    """--squeezenet without a path finds the checkpoint in $TORCH_HOME/hub/checkpoints under either known
    name; a file under a known name whose content is not torchvision's is refused (named like torchvision's
    checkpoint, but the sha256 differs) unless --allow-unverified. A folder given as PATH is searched the
    same way."""
    _squeeze_checkpoint(hub, name, random_backbones)
    status, stdout, stderr = _run(capsys, "--squeezenet", "--dest", tmp_path / "o1")
    assert status == 1
    assert (
        "named like torchvision's" in stderr and str(hub / name) in stderr and "--allow-unverified" in stderr
    )
    assert not _lines(stdout, "wrote")

    status, stdout, stderr = _run(capsys, "--squeezenet", "--dest", tmp_path / "o1", "--allow-unverified")
    assert status == 0, stderr
    assert _lines(stdout, "wrote") == [f"wrote {tmp_path / 'o1' / SQUEEZE.filename}  (from {name})"]
    assert _ours(tmp_path / "o1" / SQUEEZE.filename)[1]["source"] == name

    status, stdout, stderr = _run(
        capsys, "--squeezenet", hub, "--dest", tmp_path / "o2", "--allow-unverified"
    )
    assert status == 0, stderr
    assert _same_params(
        _params(tmp_path / "o1" / SQUEEZE.filename), _params(tmp_path / "o2" / SQUEEZE.filename)
    )


def test_no_backbone_in_hub_cache(hub, tmp_path, capsys):
    """No checkpoint in the torch hub cache and no path: exit 1, the error names the file(s) to provide and
    the folder searched; a PATH that does not exist is 'not found'. Nothing is written."""
    status, stdout, stderr = _run(capsys, "--vgg16", "--squeezenet", "--dest", tmp_path / "out")
    assert status == 1
    errors = _lines(stderr, "error:")
    assert len(errors) == 2
    assert "vgg16-397923af.pth" in errors[0] and str(hub) in errors[0] and "--vgg16" in errors[0]
    assert all(f in errors[1] for f in SQUEEZE.torchvision_files) and str(hub) in errors[1]
    assert not _lines(stdout, "wrote") and not (tmp_path / "out").exists()

    status, _, stderr = _run(capsys, "--vgg16", tmp_path / "nope.pth", "--dest", tmp_path / "out")
    assert status == 1 and "not found" in stderr and "vgg16-397923af.pth" in stderr


def test_backbone_missing_key_wrong_shape_or_dtype(tmp_path, random_backbones):
    """A checkpoint without one of the layers the loss uses is refused naming the key (in the file's own key
    style) and saying it is not a torchvision squeezenet1_1 checkpoint; a wrong shape or integer weights are
    refused naming the key. Nothing is written."""

    def drop(state):
        del state["features.12.expand3x3.bias"]

    def drop_sequential(state):
        del state["3.squeeze.weight"]

    def transpose(state):
        state["features.3.squeeze.weight"] = np.ascontiguousarray(state["features.3.squeeze.weight"].T)

    def integers(state):
        state["features.0.bias"] = state["features.0.bias"].astype(np.int32)

    cases = [
        (
            drop,
            "features.",
            r"missing key 'features.12.expand3x3.bias'.*not a torchvision squeezenet1_1",
        ),
        (drop_sequential, "", r"missing key '3.squeeze.weight'.*not a torchvision squeezenet1_1"),
        (
            transpose,
            "features.",
            r"'features.3.squeeze.weight' has shape \(1, 1, 64, 16\), expected "
            r"\(16, 64, 1, 1\)",
        ),
        (integers, "features.", r"'features.0.bias' holds torch.int32"),
    ]
    for i, (change, prefix, message) in enumerate(cases):
        path = _squeeze_checkpoint(
            tmp_path / f"src{i}", "sq.pth", random_backbones, prefix=prefix, change=change
        )
        with pytest.raises(WeightsError, match=message):
            convert.convert_backbone(path, SQUEEZE, tmp_path / "out", allow_unverified=True)
    assert not (tmp_path / "out").exists()


def test_originals_and_backbones_in_one_invocation(tmp_path, capsys, random_backbone_checkpoints):
    """--source with --squeezenet converts the 10 originals (verified: version 'current') and the backbone
    (unverified, allowed by the same flag) into one folder."""
    dest = tmp_path / "dest"
    status, stdout, stderr = _run(
        capsys,
        "--source",
        ORIGINAL_WEIGHTS,
        "--squeezenet",
        random_backbone_checkpoints["squeezenet1_1"],
        "--dest",
        dest,
        "--allow-unverified",
    )
    assert status == 0, stderr
    assert len(_lines(stdout, "wrote")) == len(FORMATS) + 1
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [f.our_name for f in FORMATS] + [SQUEEZE.filename]
    )
    assert {_ours(dest / f.our_name)[1]["version"] for f in FORMATS} == {"current"}


def _vgg16_features_module():
    """torchvision's vgg16().features architecture (configuration D), built from torch.nn."""
    nn = torch.nn
    layers, cin = [], 3
    for v in (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


def _squeezenet1_1_features_module():
    """torchvision's squeezenet1_1().features architecture, built from torch.nn."""
    nn = torch.nn

    class Fire(nn.Module):
        def __init__(self, cin, s, e1, e3):
            super().__init__()
            self.squeeze = nn.Conv2d(cin, s, 1)
            self.squeeze_activation = nn.ReLU(inplace=True)
            self.expand1x1 = nn.Conv2d(s, e1, 1)
            self.expand1x1_activation = nn.ReLU(inplace=True)
            self.expand3x3 = nn.Conv2d(s, e3, 3, padding=1)
            self.expand3x3_activation = nn.ReLU(inplace=True)

    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, stride=2),
        nn.ReLU(inplace=True),
        pool(),
        Fire(64, 16, 64, 64),
        Fire(128, 16, 64, 64),
        pool(),
        Fire(128, 32, 128, 128),
        Fire(256, 32, 128, 128),
        pool(),
        Fire(256, 48, 192, 192),
        Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256),
        Fire(512, 64, 256, 256),
    )


@pytest.mark.parametrize("backbone", [VGG, SQUEEZE], ids=lambda b: b.name)
def test_backbone_round_trip(backbone, exported, converted_weights, random_backbones, tmp_path, capsys):
    """--to-torch writes <name>_features.pth: torchvision's keys 'features.<i>.weight|bias' in torchvision's
    order, OIHW, the original bits (contiguous float32); with the 'features.' prefix removed it loads with
    strict=True into torchvision's features architecture, and converting it again gives the same npz."""
    path = exported / convert.exported_backbone_name(backbone)
    assert path.name == f"{backbone.name}_features.pth"
    back = _original(path)
    random = random_backbones[backbone.name]
    assert list(back) == list(random)
    for key, value in random.items():
        assert back[key].is_contiguous() and _same_bits(back[key], value), key

    module = _vgg16_features_module() if backbone is VGG else _squeezenet1_1_features_module()
    module.load_state_dict({k[len("features.") :]: v for k, v in back.items()}, strict=True)

    status, _, stderr = _run(
        capsys, convert.backbone_flag(backbone), path, "--dest", tmp_path, "--allow-unverified"
    )
    assert status == 0, stderr
    assert _same_params(_params(tmp_path / backbone.filename), _params(converted_weights / backbone.filename))
