"""Tests of ``python -m watson_jax compare`` (watson_jax/cli.py).

The images are small PNGs written here; no pretrained weights are present (WATSON_JAX_WEIGHTS points at an
empty folder), so the Watson losses run with their untuned initial parameters. Shapes and metric sets are
reused across tests so that the jitted losses compile once per process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from watson_jax import registry, weights
from watson_jax.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
UNTUNED = "untuned initial parameters"


def _gradient(h: int, w: int) -> np.ndarray:
    """A smooth colour gradient, float in [0, 1], (H, W, 3)."""
    ys = np.linspace(0.2, 1.0, h)[:, None, None]
    xs = np.linspace(0.0, 1.0, w)[None, :, None]
    return ys * xs * np.array([1.0, 0.7, 0.4])


def _save(path: Path, image: np.ndarray) -> str:
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    ref, odd = _gradient(40, 56), _gradient(45, 61)
    return {
        "ref": _save(folder / "ref.png", ref),
        "noisy": _save(folder / "noisy.png", ref + rng.normal(0, 0.05, ref.shape)),
        "odd_ref": _save(folder / "odd_ref.png", odd),
        "odd_noisy": _save(folder / "odd_noisy.png", odd + rng.normal(0, 0.05, odd.shape)),
        "not_an_image": str(_write_text(folder / "text.png", "not a png")),
    }


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def no_weights(tmp_path, monkeypatch) -> Path:
    """An empty weights folder, so no pretrained weights are found."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(weights.ENV_VAR, str(folder))
    return folder


def _table(stdout: str) -> dict[str, float]:
    """The printed table as {name: value}; every line must be 'NAME VALUE'."""
    rows = {}
    for line in stdout.strip().splitlines():
        name, value = line.split()
        rows[name] = float(value)
    return rows


def _compare(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["compare", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_all_metrics_via_subprocess(images, no_weights):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **{weights.ENV_VAR: str(no_weights)})
    result = subprocess.run(
        [sys.executable, "-m", "watson_jax", "compare", images["ref"], images["noisy"]],
        capture_output=True,
        text=True,
        env=env,
        cwd=no_weights,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = _table(result.stdout)
    # Every loss whose parameters do not depend on the image size (Adaptive runs on request), less the
    # Deeploss losses, whose backbones have not been converted (skipped with a note).
    assert list(rows) == [n for n in registry.available_names() if n != "Adaptive" and "Deeploss" not in n]
    assert "skipped Deeploss-VGG, Deeploss-Squeeze" in result.stderr and "--vgg16" in result.stderr
    for name, value in rows.items():
        assert math.isfinite(value) and value > 0, (name, value)
    assert result.stderr.count(UNTUNED) == 1
    assert "watson-jax convert" in result.stderr and str(no_weights) in result.stderr
    assert "convert_weights.py" not in result.stderr  # a pip install has no such script
    assert "cropped" not in result.stderr


def test_identical_images_are_closer(capsys, images):
    status, out, err = _compare(capsys, images["ref"], images["noisy"], "--metric", "l1,watson-dft")
    assert status == 0, err
    different = _table(out)
    assert list(different) == ["L1", "Watson-DFT"]
    assert err.count(UNTUNED) == 1 and "Watson-DFT" in err

    status, out, err = _compare(capsys, images["ref"], images["ref"], "--metric", "L1", "-m", "Watson-FFT")
    assert status == 0, err
    same = _table(out)
    assert list(same) == ["L1", "Watson-DFT"]
    assert same["L1"] == 0
    assert 0 <= same["Watson-DFT"] < different["Watson-DFT"]
    assert all(math.isfinite(v) and v > 0 for v in different.values())


def test_lines_are_aligned(capsys, images):
    status, out, _ = _compare(capsys, images["ref"], images["noisy"], "-m", "l1,watson-dft")
    assert status == 0
    lines = out.strip().splitlines()
    starts = {line.index(line.split()[1]) for line in lines}
    assert len(starts) == 1


def test_crop_note_for_sizes_not_multiple_of_8(capsys, images):
    status, out, err = _compare(
        capsys, images["odd_ref"], images["odd_noisy"], "-m", "l1,watson", "--colorspace", "Gray"
    )
    assert status == 0, err
    rows = _table(out)
    assert list(rows) == ["L1", "Watson-DCT"]
    assert all(math.isfinite(v) and v > 0 for v in rows.values())
    assert err.count("cropped") == 1 and "61x45 to 56x40" in err


def test_no_crop_note_and_no_untuned_note_for_pixel_losses(capsys, images):
    status, out, err = _compare(capsys, images["ref"], images["noisy"], "-m", "l1")
    assert status == 0
    assert list(_table(out)) == ["L1"]
    assert "cropped" not in err and UNTUNED not in err


def test_pretrained_weights_are_used_when_present(capsys, images, no_weights):
    # "Pretrained" weights that differ from the initial ones (the threshold parameters t_tild of every
    # channel raised by 1): the printed value must be the one these weights give, computed here by the
    # library on the same (cropped) images, and not the untuned value.
    import jax

    from watson_jax import LossProvider
    from watson_jax.cli import load_pair

    metric = registry.lookup("Watson-DFT")
    initial = jax.tree.map(np.asarray, metric.init_params("rgb"))
    tuned = {
        k: ({**v, "t_tild": v["t_tild"] + 1.0} if isinstance(v, dict) else v) for k, v in initial.items()
    }
    weights.save_params(no_weights / weights.weights_filename(metric.weights_stem, "rgb"), tuned)
    status, out, err = _compare(capsys, images["ref"], images["noisy"], "-m", "l1,watson-dft")
    assert status == 0, err
    rows = _table(out)
    assert list(rows) == ["L1", "Watson-DFT"]
    assert UNTUNED not in err

    pair = load_pair(images["ref"], images["noisy"])
    options = dict(reduction="sum", deterministic=True, weights_dir=no_weights)
    expected = float(
        LossProvider().get_loss_function("Watson-DFT", pretrained=True, **options)(pair.x, pair.y)
    )
    untuned = float(
        LossProvider().get_loss_function("Watson-DFT", pretrained=False, **options)(pair.x, pair.y)
    )
    # The test weights change the value (measured: 1.6%) far beyond the table's print precision.
    assert abs(expected - untuned) > 1e-3 * untuned
    # The table prints 6 significant digits: a rounding error of at most 5e-6 relative.
    assert rows["Watson-DFT"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "case, message",
    [
        ("size mismatch", "differ in size"),
        ("unknown metric", "unknown loss 'nope'"),
        ("missing backbone", "needs the ImageNet vgg16 backbone"),
        ("unknown colorspace", "unknown colorspace"),
        ("missing file", "not found"),
        ("unreadable file", "cannot read image"),
        ("corrupt weights", "corrupt"),
    ],
)
def test_errors_exit_2_with_message(capsys, images, no_weights, case, message):
    args = [images["ref"], images["noisy"]]
    if case == "size mismatch":
        args = [images["ref"], images["odd_noisy"]]
    elif case == "unknown metric":
        args += ["--metric", "l1,nope"]
    elif case == "missing backbone":
        args += ["--metric", "deeploss-vgg"]
    elif case == "unknown colorspace":
        args += ["--colorspace", "cmyk"]
    elif case == "missing file":
        args = [images["ref"], str(no_weights / "missing.png")]
    elif case == "unreadable file":
        args = [images["not_an_image"], images["noisy"]]
    elif case == "corrupt weights":
        (no_weights / "watson_dft_rgb.npz").write_bytes(b"not a zip archive")
        args += ["-m", "watson-dft", "--weights-dir", str(no_weights)]
    status, out, err = _compare(capsys, *args)
    assert status == 2
    assert out == ""
    assert "error:" in err and message in err


def test_usage_errors_return_2(capsys):
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["compare", "only_one.png"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_adaptive_on_request_with_untuned_parameters_for_other_sizes(images, capsys, converted_weights):
    """Adaptive's pretrained weights are for 64x64 images; other sizes use its untuned parameters, said in
    one note."""
    status = main(
        [
            "compare",
            images["ref"],
            images["noisy"],
            "--metric",
            "adaptive",
            "--weights-dir",
            str(converted_weights),
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0
    assert list(_table(out)) == ["Adaptive"] and math.isfinite(_table(out)["Adaptive"])
    assert "weights are for 64x64 images" in err


def test_map_writes_the_images_and_one_heat_map_per_loss(capsys, images, tmp_path):
    out_png = tmp_path / "map.png"
    status, out, err = _compare(
        capsys, images["ref"], images["noisy"], "-m", "l1,watson-dft", "--map", str(out_png)
    )
    assert status == 0, err
    assert list(_table(out)) == ["L1", "Watson-DFT"]
    assert f"wrote the distance maps to {out_png}" in err
    figure = np.asarray(Image.open(out_png).convert("RGB"))
    reference = np.asarray(Image.open(images["ref"]).convert("RGB"))
    h, w = 40, 56  # the test images; enlarged ×4 (nearest) to at least 128 pixels
    scale, label, gap = 4, 14, 4
    assert figure.shape == (h * scale + label, 4 * (w * scale + gap) - gap, 3)
    np.testing.assert_array_equal(figure[label::scale, 0 : w * scale : scale], reference)  # panel A
    panels = [figure[label:, k * (w * scale + gap) : k * (w * scale + gap) + w * scale] for k in (2, 3)]
    for panel in panels:  # the noise is everywhere: the heat maps are not flat
        assert panel.std() > 10


def test_map_to_an_unwritable_path_is_a_usage_error(capsys, images, tmp_path):
    status, out, err = _compare(
        capsys,
        images["ref"],
        images["noisy"],
        "-m",
        "l1",
        "--map",
        str(tmp_path / "no" / "such" / "folder" / "map.png"),
    )
    assert status == 2 and "cannot write the map" in err


def test_deeploss_on_too_small_images(capsys, tmp_path, converted_weights):
    small = _save(tmp_path / "small.png", _gradient(16, 40))
    status, out, err = _compare(capsys, small, small, "--weights-dir", str(converted_weights))
    assert status == 0, err
    # 16 pixels are enough for VGG16's four poolings, not for SqueezeNet's strided convolution and poolings.
    assert "Deeploss-VGG" in out and "Deeploss-Squeeze" not in out
    assert "skipped Deeploss-Squeeze: the images are too small" in err
    status, out, err = _compare(
        capsys, small, small, "-m", "deeploss-squeeze", "--weights-dir", str(converted_weights)
    )
    assert status == 2 and "Deeploss-Squeeze needs images of at least 17x17 pixels" in err
