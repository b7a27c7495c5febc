"""The VAE data (docs/reference.md §11): MNIST from its four IDX files padded to 32×32, celebA aligned faces
cropped and resized to 64×64, and their grain pipelines (through experiments.common.pipeline).

Images are kept as uint8 NHWC in memory (MNIST 70k × 32 × 32, the celebA sample 2000 × 64 × 64 × 3) and
scaled to [0, 1] float32 per batch.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from experiments.common import pipeline

DEFAULT_DIRS = {"mnist": "../shared/data/mnist", "celeba": "../shared/data/celeba_sample"}
#: The crop box (left, top, right, bottom) of the aligned faces in their 178 × 218 frame.
CELEBA_BOX = (25, 45, 153, 178)
CELEBA_FRAME = (178, 218)
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049


def _read_idx(path: Path, magic: int, dims: int, what: str) -> np.ndarray:
    """The uint8 array of an IDX file: a big-endian header (magic, then ``dims`` sizes), then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    size = 4 * (1 + dims)
    header = np.frombuffer(raw[:size], ">u4")
    if len(raw) < size or header[0] != magic:
        raise ValueError(f"{path} is not an IDX {what} file (magic {magic} expected).")
    shape = tuple(int(v) for v in header[1:])
    data = np.frombuffer(raw, np.uint8, offset=size)
    if data.size != np.prod(shape):
        raise ValueError(f"{path} holds {data.size} values where its header says {shape}.")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"no {stem}[.gz] in {folder}: pass --data DIR, a folder holding the four MNIST IDX files."
    )


def load_mnist(folder: str | Path) -> dict[str, np.ndarray]:
    """{'train': (60000, 32, 32, 1), 'test': (10000, 32, 32, 1)} uint8: the digits padded by 2 zeros."""
    folder = Path(folder)
    out = {}
    for split, stem in (("train", "train-images-idx3-ubyte"), ("test", "t10k-images-idx3-ubyte")):
        digits = _read_idx(_find(folder, stem), IMAGE_MAGIC, 3, "image")
        out[split] = np.pad(digits, ((0, 0), (2, 2), (2, 2)))[..., None]
    return out


def load_mnist_labels(folder: str | Path) -> dict[str, np.ndarray]:
    """{'train': (60000,), 'test': (10000,)} uint8 digit labels, in the order of :func:`load_mnist`."""
    folder = Path(folder)
    return {
        split: _read_idx(_find(folder, stem), LABEL_MAGIC, 1, "label")
        for split, stem in (("train", "train-labels-idx1-ubyte"), ("test", "t10k-labels-idx1-ubyte"))
    }


def celeba_files(folder: str | Path) -> list[Path]:
    """The face images of ``folder`` (``img_align_celeba/*.jpg`` inside it, or ``*.jpg`` directly), sorted."""
    folder = Path(folder)
    inner = folder / "img_align_celeba"
    files = sorted((inner if inner.is_dir() else folder).glob("*.jpg"))
    if not files:
        raise FileNotFoundError(
            f"no .jpg images in {folder} (nor in {inner}): pass --data DIR, a folder of aligned celebA faces."
        )
    return files


def celeba_image(path: Path) -> np.ndarray:
    """One face, (64, 64, 3) uint8: the crop box given in the 178 × 218 frame, scaled to the image's actual
    size (e.g. the half-resolution sample), resized with the Lanczos filter."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        sx, sy = im.width / CELEBA_FRAME[0], im.height / CELEBA_FRAME[1]
        left, top, right, bottom = CELEBA_BOX
        box = (left * sx, top * sy, right * sx, bottom * sy)
        if all(float(v).is_integer() for v in box):  # e.g. full size: the reference's crop, then resize
            out = im.crop(tuple(int(v) for v in box)).resize((64, 64), Image.LANCZOS)
        else:  # a fractional box (the half-resolution sample): resampled from the box directly
            out = im.resize((64, 64), Image.LANCZOS, box=box)
        return np.asarray(out, np.uint8)


def load_celeba(folder: str | Path, *, seed: int = 0, limit: int | None = None) -> dict[str, np.ndarray]:
    """{'train', 'test'} uint8 (N, 64, 64, 3): a seeded random 90/10 split of the faces of ``folder``
    (the permutation ``numpy.random.default_rng(seed)``; its first 10 % are the test set)."""
    files = celeba_files(folder)[:limit]
    images = np.stack([celeba_image(p) for p in files])
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = max(1, len(images) // 10)
    return {"train": images[order[n_test:]], "test": images[order[:n_test]]}


def load(dataset: str, folder: str | Path | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
    dataset = str(dataset).lower()
    if dataset not in DEFAULT_DIRS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DEFAULT_DIRS)}.")
    folder = DEFAULT_DIRS[dataset] if folder is None else folder
    return load_mnist(folder) if dataset == "mnist" else load_celeba(folder, seed=seed)


def unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 images → float32 in [0, 1], as the models take them."""
    return images.astype(np.float32) / 255.0


def reader(images: np.ndarray):
    """``read(indices) -> {'image': float32 in [0, 1]}`` for :func:`experiments.common.pipeline.batches`."""

    def read(indices: np.ndarray) -> dict:
        return {"image": unit_float(images[indices])}

    return read


def train_batches(images: np.ndarray, *, batch: int, seed: int, epochs: int, devices: int, process: int,
                  processes: int):  # fmt: skip
    """Shuffled per epoch from ``seed``, last partial batch dropped, this process's rows (resumable)."""
    plan = pipeline.BatchPlan(len(images), batch, seed, shuffle=True, drop_remainder=True)
    ds = pipeline.batches(
        plan, reader(images), epochs=epochs, devices=devices, process=process, processes=processes
    )
    return plan, ds
