"""experiments.twoafc tune: steps lower the objective, outputs load as weights, exact resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

from experiments.twoafc import __main__ as cli
from experiments.twoafc import data, losses, synthetic, tune
from watson_jax import LossProvider, registry, twoafc, weights


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    splits = {"train": ("traditional", "cnn"), "val": ("traditional",)}
    return synthetic.make_bapps(tmp_path_factory.mktemp("bapps") / "2afc", splits=splits, per_category=4)


def test_steps_lower_the_objective(root):
    loss = losses.build("Watson-DFT", "RGB", pretrained=False, luminance="image")
    params = {"loss": loss.params, "head": twoafc.watson_head_init()}
    opt = optax.adam(1e-2, b1=0.5, b2=0.999)
    step = tune.make_step(loss, twoafc.watson_head, opt, luminance="image", input_range=False, clamp=False)
    rows = data.FolderSource(root, "train").read(np.arange(4))
    batch = {k: rows[k] for k in (*data.IMAGES, "judge")}
    batch |= {"mask": np.array([1, 1, 1, 0], bool), "index": np.arange(4, dtype=np.int32)}
    state = {"params": params, "opt": opt.init(params), "step": 0}
    key = jax.random.key(0)  # one key: the same dropout masks each step, so the objective is comparable
    values = []
    for _ in range(4):
        state, metrics = step(state, batch, key)
        values.append(float(metrics["loss"]))
    assert values[-1] < values[0], values


def _tune(root, out, *extra):
    argv = ["--data", str(root), "--metric", "watson-dft", "--out", str(out), "--batch-size", "3"]
    argv += ["--epochs", "1", "--decay-epochs", "1", "--lr", "1e-2", "--checkpoint-every", "2", *extra]
    return [sys.executable, "-m", "experiments.twoafc", "tune", *argv]


def test_resume_after_sigkill_equals_uninterrupted(root, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    whole = subprocess.Popen(_tune(root, tmp_path / "whole"), env=env, stderr=subprocess.PIPE)
    killed = subprocess.Popen(_tune(root, tmp_path / "killed"), env=env, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / "4").is_dir() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)  # at step 4 or 5: mid-run, after a finished checkpoint
    killed.wait()
    assert (ckpts / "4").is_dir() and not (tmp_path / "killed" / "watson_dft_rgb.npz").exists()
    again = subprocess.run(
        _tune(root, tmp_path / "killed"), env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err[-2000:]
    a = np.load(tmp_path / "whole" / "watson_dft_rgb.npz")
    b = np.load(tmp_path / "killed" / "watson_dft_rgb.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    log_a = json.loads((tmp_path / "whole" / "log.json").read_text())
    log_b = json.loads((tmp_path / "killed" / "log.json").read_text())
    assert log_a == log_b and len(log_a) == 6  # 8 triplets, batch 3: 3 batches × 2 epochs
    # the tuned weights load through weights_dir and differ from the initial ones
    tuned = LossProvider().get_loss_function("Watson-DFT", weights_dir=tmp_path / "whole")
    init = LossProvider().get_loss_function("Watson-DFT", pretrained=False)
    diff = jax.tree.map(
        lambda p, q: float(np.abs(np.asarray(p) - np.asarray(q)).max()), tuned.params, init.params
    )
    assert max(jax.tree.leaves(diff)) > 0


def test_untunable_loss_and_bad_layout(root, tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["tune", "--data", str(root), "--metric", "L2", "--out", str(out)]) == 2
    assert "L2 has no parameters" in capsys.readouterr().err and not out.exists()
    assert cli.main(["tune", "--data", str(tmp_path), "--metric", "Watson-DFT", "--out", str(out)]) == 2
    assert "train/ and val/" in capsys.readouterr().err and not out.exists()


def test_tiny_tune_raises_the_val_score(tmp_path):
    from experiments.twoafc import evaluate

    splits = {"train": ("traditional", "cnn"), "val": ("traditional",)}
    root = synthetic.make_bapps(tmp_path / "2afc", splits=splits, per_category=12, seed=5)
    out = tmp_path / "t"
    argv = ["tune", "--data", str(root), "--metric", "watson-dft", "--out", str(out), "--batch-size", "6"]
    assert cli.main([*argv, "--epochs", "3", "--decay-epochs", "2", "--lr", "3e-2"]) == 0
    val = data.FolderSource(root, "val")
    before = evaluate.evaluate(val, ["Watson-DFT"], "RGB", pretrained=False)["Watson-DFT"]["mean"]
    after = evaluate.evaluate(val, ["Watson-DFT"], "RGB", weights_dir=out)["Watson-DFT"]["mean"]
    assert after > before, (before, after)


def test_batch_luminance_ignores_the_padding(root):
    """--luminance batch: a batch padded with a masked (bright) row tunes as the unpadded batch. Measured:
    the loss equal to the bit; the parameters after one Adam step within 2.4e-5 relative, where a gradient
    component near 0 meets Adam's first step (≈ g/|g|, which amplifies rounding), inside atol 1e-7. Without
    the fill of the padding the bright row moves the mean luminance: loss 5.5e-4 relative, parameters
    2× apart."""
    loss = losses.build("Watson-DCT", "RGB", pretrained=False, luminance="batch")
    params = {"loss": loss.params, "head": twoafc.watson_head_init()}
    opt = optax.adam(1e-2, b1=0.5, b2=0.999)
    step = tune.make_step(loss, twoafc.watson_head, opt, luminance="batch", input_range=False, clamp=False)
    rows = data.FolderSource(root, "train").read(np.arange(3))
    real = {k: rows[k] for k in (*data.IMAGES, "judge")}
    real |= {"mask": np.ones(3, bool), "index": np.arange(3, dtype=np.int32)}
    padded = {k: np.concatenate([v, np.full_like(v[:1], 255)]) for k, v in real.items()}
    padded["mask"][3] = False
    state = {"params": params, "opt": opt.init(params), "step": 0}
    key = jax.random.key(0)
    a, metrics_a = step(state, real, key)
    b, metrics_b = step(state, padded, key)
    np.testing.assert_allclose(float(metrics_b["loss"]), float(metrics_a["loss"]), rtol=1e-6)
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-5, atol=1e-7)


# Watson-DFT RGB is tuned end to end by the resume test above.
TUNABLE = [
    (metric, colorspace)
    for metric in ("Watson-DCT", "Watson-DFT", "Adaptive", "Deeploss-VGG", "Deeploss-Squeeze")
    for colorspace in ("RGB", "LA")
    if (metric, colorspace) != ("Watson-DFT", "RGB")
]


@pytest.mark.parametrize(("metric", "colorspace"), TUNABLE)
def test_every_tunable_loss_tunes_in_both_colorspaces(root, tmp_path, converted_weights, metric, colorspace):
    """One tuning step of each loss with parameters, through the command line: its weight file is written,
    loads as this package's pretrained parameters, and differs from the initial parameters it started
    from (an Adam step moves every parameter with a non-zero gradient by about the learning rate)."""
    from watson_jax import parameters

    out = tmp_path / "o"
    argv = ["tune", "--data", str(root), "--metric", metric, "--colorspace", colorspace, "--out", str(out)]
    argv += ["--batch-size", "2", "--max-steps", "1", "--lr", "1e-2", "--weights-dir", str(converted_weights)]
    assert cli.main(argv) == 0
    name = weights.weights_filename(losses.weights_stem(metric), registry.canonical_colorspace(colorspace))
    assert (out / name).is_file() and name.endswith("_rgb.npz" if colorspace == "RGB" else "_gray.npz")
    tuned = parameters.pretrained_params(metric, colorspace, weights_dir=out, download=False)
    init = parameters.init_params(metric, colorspace)
    assert jax.tree.structure(tuned) == jax.tree.structure(init)
    moved = [
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(jax.tree.leaves(tuned), jax.tree.leaves(init))
    ]
    assert max(moved) > 1e-3, moved
    assert np.isfinite(np.concatenate([np.ravel(a) for a in jax.tree.leaves(tuned)])).all()
