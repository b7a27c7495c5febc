"""VAE training: a step lowers the loss for each loss; a run resumed from its checkpoint ends like an
uninterrupted one; bad input gives one clear error."""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.vae import models, train


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A tiny MNIST-like IDX folder (blobs on black), 24 train and 8 test images."""
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for stem, n in (("train-images-idx3-ubyte", 24), ("t10k-images-idx3-ubyte", 8)):
        images = np.zeros((n, 28, 28), np.uint8)
        for k in range(n):
            r, c = rng.integers(4, 20, 2)
            images[k, r : r + 8, c : c + 6] = 255
        with gzip.open(folder / f"{stem}.gz", "wb") as f:
            f.write(np.array([2051, n, 28, 28], ">u4").tobytes() + images.tobytes())
    return folder


@pytest.mark.parametrize("loss_name", ["l2", "ssim", "watson-dft", "adaptive"])
def test_one_step_lowers_the_loss(loss_name, converted_weights):
    model = models.build("mnist", seed=0)
    gt, ge, params, rest = train._split(model)
    schedule = train.Schedule(1, 8, 1e-4, 1.0)  # the paper's lr0
    tx = train.optimiser(schedule, 1)
    loss = train.make_loss(loss_name, "mnist", weights_dir=converted_weights)
    step, evaluate = train.make_steps(gt, ge, tx)
    x = np.zeros((8, 32, 32, 1), np.float32)
    x[:, 8:20, 10:18] = 1.0
    batch = {"image": jnp.asarray(x), "mask": jnp.ones(8, bool), "index": jnp.arange(8)}
    lam = float(train.LOG_LAMBDA["mnist"].get(loss_name, 0))
    key = jax.random.key(0)
    before = float(evaluate(params, rest, loss, batch, key, lam)["loss"])
    opt = tx.init(params)
    for _ in range(3):
        params, rest, opt, metrics = step(params, rest, opt, loss, batch, key, lam)
        assert np.isfinite(float(metrics["loss"]))
    after = float(evaluate(params, rest, loss, batch, key, lam)["loss"])
    assert after < before, (loss_name, before, after)


def test_celeba_step_trains_and_updates_the_batch_statistics():
    """The celebA encoder's BatchNorms: a training step uses batch statistics and returns updated running
    statistics (PyTorch's momentum 0.1 moves the running mean off its initial 0), and the loss falls.
    Regression: merging the model without copying its BatchStats raised flax's TraceContextError."""
    model = models.build("celeba", seed=0)
    gt, ge, params, rest = train._split(model)
    schedule = train.Schedule(1, 4, 1e-4, 1.0)
    tx = train.optimiser(schedule, 1)
    loss = train.make_loss("l2", "celeba")
    step, evaluate = train.make_steps(gt, ge, tx)
    x = np.random.default_rng(0).uniform(size=(4, 64, 64, 3)).astype(np.float32)
    batch = {"image": jnp.asarray(x), "mask": jnp.ones(4, bool), "index": jnp.arange(4)}
    key = jax.random.key(0)
    before = float(evaluate(params, rest, loss, batch, key, 0.0)["loss"])
    opt = tx.init(params)
    new_params, new_rest, opt, metrics = step(params, rest, opt, loss, batch, key, 0.0)
    assert np.isfinite(float(metrics["loss"]))
    moved = [
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(jax.tree.leaves(new_rest), jax.tree.leaves(rest))
    ]
    assert max(moved) > 1e-4, moved
    assert float(evaluate(new_params, new_rest, loss, batch, key, 0.0)["loss"]) < before


def test_resume_equals_uninterrupted(mnist_dir, tmp_path, converted_weights):
    common = dict(
        dataset="mnist",
        loss_name="watson-dft",
        data_dir=mnist_dir,
        epochs=2,
        batch_size=8,
        weights_dir=converted_weights,
    )
    full = train.train_and_evaluate(out=tmp_path / "full", **common)
    train.train_and_evaluate(out=tmp_path / "cut", stop_after_epoch=1, **common)
    resumed = train.train_and_evaluate(out=tmp_path / "cut", **common)
    assert resumed["step"] == full["step"] == 2
    a, _ = train.load_run(tmp_path / "full", "latest")
    b, _ = train.load_run(tmp_path / "cut", "latest")
    for x, y in zip(
        jax.tree.leaves(jax.tree.map(np.asarray, a)), jax.tree.leaves(jax.tree.map(np.asarray, b))
    ):
        np.testing.assert_array_equal(x, y)
    assert (tmp_path / "full" / "log.csv").read_text().count("\n") == 3
    assert (tmp_path / "full" / "best").is_dir()


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown loss 'foo'"):
        train.canonical_loss("foo")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        train.train_and_evaluate(dataset="svhn", loss_name="l2", out=tmp_path)
    with pytest.raises(FileNotFoundError, match="no .jpg images"):
        train.train_and_evaluate(dataset="celeba", loss_name="l2", out=tmp_path, data_dir=tmp_path)


def test_command_line_errors(tmp_path, capsys):
    from experiments.vae.__main__ import main

    assert main(["train", "--dataset", "mnist", "--loss", "foo", "--out", str(tmp_path)]) == 2
    assert "unknown loss 'foo'" in capsys.readouterr().err
    assert main(["train", "--dataset", "svhn", "--loss", "l2", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'svhn'" in capsys.readouterr().err
