"""Tests of the weight converter (watson_jax/convert.py, convert_weights.py) and of loading weight files
(watson_jax/weights.py).

The original files are read from ../shared/original_weights (read-only, never copied into the repository);
a test that needs a modified original copies it into pytest's tmp_path first. The originals are always read
back independently with ``torch.load(weights_only=True)`` and our files with ``np.load``, so a converter
bug cannot cancel itself out. Only one JAX computation is compiled (an Adam step on 16x16 images).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ORIGINAL_WEIGHTS, REPO
from watson_jax import LossProvider, weights
from watson_jax.convert import FORMATS, convert_reference_file, main
from watson_jax.errors import MissingWeightsError, WeightsError

torch = pytest.importorskip("torch", reason="the converter reads and writes .pth files with torch")

NEURIPS = ORIGINAL_WEIGHTS / "neurips_pub_tag"
FMT_IDS = [f.reference_name for f in FORMATS]
SUPPORTED = {f.reference_name for f in FORMATS}
#: The .pth files next to the supported ones that this version of the converter skips.
UNSUPPORTED = sorted(p.name for p in ORIGINAL_WEIGHTS.glob("*.pth") if p.name not in SUPPORTED)
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
    """Reference keys that hold constants of the loss, not parameters (SPEC §9)."""
    return key.split(".")[-1] == "blocksize" or key.endswith("dct.A") or key.startswith("to_YCbCr.")


ADAPTIVE_PREFIX = ".robust_loss.adaptive_lossfun."


def _our_key(reference_key: str) -> str:
    """'ly.t_tild' → 'ly/t_tild'; the Adaptive latents drop the reference's module path."""
    if reference_key.startswith(ADAPTIVE_PREFIX):
        return reference_key[len(ADAPTIVE_PREFIX):]
    return reference_key.replace(".", "/")


def _same_bits(a, b) -> bool:
    """Same dtype, shape and bytes (so -0.0 vs 0.0 or a NaN payload would count as different)."""
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


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

    expected = {_our_key(k): v for k, v in original.items() if not _is_constant(k)}
    assert set(ours) == set(expected)
    if fmt.metric == "Adaptive":
        assert set(ours) == {"latent_alpha", "latent_scale"}
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
    if fmt.metric == "Adaptive":   # latents only, no constants
        assert list(back) == [ADAPTIVE_PREFIX + "latent_alpha", ADAPTIVE_PREFIX + "latent_scale"]
        return
    assert blocksizes and all(back[k].dtype == torch.int64 and int(back[k]) == 8 for k in blocksizes)


# -- 3. tuned weights back to the reference layout --------------------------------------------------

def test_tuned_weights_export_to_reference_layout(converted_weights, tmp_path):
    """Parameters changed in JAX (one optax Adam step on the RGB Watson-DFT loss) and saved with
    weights.save_params export with --to-torch to exactly the updated values, in the original file's key
    layout and shapes, with the constants unchanged — not the original values."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")

    loss = LossProvider().get_loss_function("Watson-DFT", "RGB", deterministic=True,
                                            weights_dir=converted_weights)
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
                assert _same_bits(ours[_our_key(key)], value), (fmt.reference_name, key)
        assert set(ours) == set(current)
        assert any(not _same_bits(ours[k], current[k]) for k in ours), fmt.reference_name

    status, stdout, stderr = _run(capsys, "--source", ORIGINAL_WEIGHTS, "--dest", tmp_path / "other",
                                  "--version", "neurips")
    assert status == 1
    assert stderr.count("--version current") == len(FORMATS)


# -- 6. command line --------------------------------------------------------------------------------

def _check_conversion_output(stdout: str, dest: Path) -> None:
    wrote = _lines(stdout, "wrote")
    assert len(wrote) == len(FORMATS)
    for fmt in FORMATS:
        assert sum(fmt.our_name in line and f"(from {fmt.reference_name})" in line for line in wrote) == 1
    skipped = _lines(stdout, "skipped")
    assert sorted(line.split()[1].rstrip(":") for line in skipped) == UNSUPPORTED
    assert all("pnet_lin" in name for name in UNSUPPORTED) and UNSUPPORTED
    assert sorted(p.name for p in dest.iterdir()) == sorted(f.our_name for f in FORMATS)


def test_cli_main_converts_and_skips(tmp_path, capsys, converted_weights):
    """main([...]) on the original folder exits 0, prints one 'wrote' line per supported file and one
    'skipped' line per not-yet-supported one (pnet_lin), writes exactly the supported files, and they
    equal those of convert_reference_file."""
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
    """The root script convert_weights.py, run as a user would, exits 0 with the same 'wrote'/'skipped'
    output and files."""
    dest = tmp_path / "dest"
    env = dict(os.environ, **{weights.ENV_VAR: str(tmp_path / "unused")})
    result = subprocess.run([sys.executable, "convert_weights.py", "--source", str(ORIGINAL_WEIGHTS),
                             "--dest", str(dest)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
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
    """--to-torch without --dest, and conversion without --source, are argparse usage errors (exit 2)."""
    with pytest.raises(SystemExit) as info:
        main(["--to-torch", "--source", str(tmp_path)])
    assert info.value.code == 2
    assert "--dest" in capsys.readouterr().err

    with pytest.raises(SystemExit) as info:
        main(["--dest", str(tmp_path / "dest")])
    assert info.value.code == 2
    assert "--source" in capsys.readouterr().err


def test_cli_no_convertible_files(tmp_path, capsys):
    """A source folder with nothing to convert — empty, only unsupported originals, or (for --to-torch) no
    watson_jax weight files — exits 1 with an error naming the folder."""
    empty = tmp_path / "empty"
    empty.mkdir()
    status, stdout, stderr = _run(capsys, "--source", empty, "--dest", tmp_path / "d1")
    assert status == 1
    assert "no convertible files" in stderr and str(empty) in stderr
    assert not _lines(stdout, "wrote")

    unsupported = tmp_path / "unsupported"
    unsupported.mkdir()
    shutil.copy(ORIGINAL_WEIGHTS / UNSUPPORTED[0], unsupported)
    status, stdout, stderr = _run(capsys, "--source", unsupported, "--dest", tmp_path / "d2")
    assert status == 1
    assert _lines(stdout, "skipped") and "no convertible files" in stderr

    status, stdout, stderr = _run(capsys, "--to-torch", "--source", empty, "--dest", tmp_path / "d3")
    assert status == 1
    assert "no convertible files" in stderr


# -- 7. loading through the provider ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_provider_loads_converted_weights(fmt, converted_weights):
    """LossProvider.get_loss_function(pretrained=True, weights_dir=...) loads exactly the file's parameters
    (and hence the original tensors)."""
    colorspace = "RGB" if fmt.colorspace == "rgb" else "grey"
    loss = LossProvider().get_loss_function(fmt.metric, colorspace, pretrained=True,
                                            weights_dir=converted_weights)
    loaded = weights.flatten({k: v for k, v in loss.params.items()})
    ours, _ = _ours(converted_weights / fmt.our_name)
    assert set(loaded) == set(ours)
    for key in ours:
        assert _same_bits(np.asarray(loaded[key]), ours[key]), key


# -- 8. broken weight files (missing keys, shapes, NaNs and missing files: tests/test_errors.py) -------------------------------------------------------------------------

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
    status, stdout, _ = _run(capsys, "--source", tmp_path, "--dest", tmp_path / "out",
                             "--partition-spline", ORIGINAL_WEIGHTS / "partition_spline.npz")
    assert status == 0 and "log_partition_spline.npz" in stdout
    table = partition.read_table(tmp_path / "out" / partition.TABLE_FILE)
    with np.load(ORIGINAL_WEIGHTS / "partition_spline.npz") as original:
        assert np.array_equal(table["values"], original["values"])
        assert np.array_equal(table["tangents"], original["tangents"])
    modified = tmp_path / "partition_spline.npz"
    with np.load(ORIGINAL_WEIGHTS / "partition_spline.npz") as original:
        np.savez(modified, values=original["values"] + 1e-3, tangents=original["tangents"],
                 x_scale=original["x_scale"])
    status, _, stderr = _run(capsys, "--source", tmp_path, "--dest", tmp_path / "o2", "--partition-spline", modified)
    assert status == 1 and "--allow-unverified" in stderr
    with pytest.raises(SystemExit):
        main(["--to-torch", "--dest", str(tmp_path / "x"), "--partition-spline", str(modified)])


def test_missing_partition_spline_path(tmp_path, capsys):
    status, _, stderr = _run(capsys, "--source", tmp_path, "--dest", tmp_path / "o",
                             "--partition-spline", tmp_path / "nope.npz")
    assert status == 1 and "not found" in stderr and "Traceback" not in stderr
