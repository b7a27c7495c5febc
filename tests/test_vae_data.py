"""The VAE data: MNIST from IDX padded to 32×32, celebA crop box scaled to the image size, the split."""

import gzip

import numpy as np
import pytest
from helpers import shared

from experiments.vae import input_pipeline as ip


def _write_idx(path, images):
    header = np.array([2051, len(images), 28, 28], ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())


def test_mnist_idx_padded(tmp_path):
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test)
    data = ip.load_mnist(tmp_path)
    assert data["train"].shape == (5, 32, 32, 1) and data["test"].shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(data["train"][:, 2:30, 2:30, 0], train)
    assert data["train"][:, :2].max() == 0 and data["train"][:, :, 30:].max() == 0


def test_mnist_missing_files_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data DIR"):
        ip.load_mnist(tmp_path)


def test_celeba_crop_box_scaled_to_image_size(tmp_path):
    """A full-size 178×218 face and its exact half (89×109, 2×2 means) give nearly the same 64×64 crop; the
    box at full size is the crop (25, 45, 153, 178) resized with Lanczos."""
    from PIL import Image

    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 256, (109, 89, 3)), np.ones((2, 2, 1))).astype(np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    Image.fromarray(big[::2, ::2]).save(tmp_path / "half.png")
    full = ip.celeba_image(tmp_path / "big.png")
    expected = np.asarray(Image.fromarray(big).crop(ip.CELEBA_BOX).resize((64, 64), Image.LANCZOS))
    np.testing.assert_array_equal(full, expected)
    half = ip.celeba_image(tmp_path / "half.png")
    assert half.shape == (64, 64, 3)
    # measured: mean |difference| 7.5 grey levels on this blocky random image (resampling differs); the
    # unscaled box on the half image covers another region (mean |difference| 109)
    assert np.abs(half.astype(float) - full).mean() < 20


def test_celeba_split_and_errors(tmp_path):
    folder = shared("data/celeba_sample")
    data = ip.load_celeba(folder, seed=0, limit=40)
    assert data["train"].shape == (36, 64, 64, 3) and data["test"].shape == (4, 64, 64, 3)
    again = ip.load_celeba(folder, seed=0, limit=40)
    np.testing.assert_array_equal(again["test"], data["test"])
    with pytest.raises(FileNotFoundError, match="no .jpg images"):
        ip.load_celeba(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        ip.load("svhn")


def test_train_batches_drop_last_and_resume():
    images = np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2, 1)
    plan, ds = ip.train_batches(images, batch=4, seed=0, epochs=2, devices=1, process=0, processes=1)
    assert plan.batches_per_epoch == 2
    it = iter(ds)
    first = [next(it)["image"] for _ in range(4)]
    assert all(b.shape == (4, 2, 2, 1) for b in first)
    it2 = iter(ds)
    next(it2)
    state = it2.get_state()
    it3 = iter(ds)
    it3.set_state(state)
    np.testing.assert_array_equal(next(it3)["image"], first[1])
