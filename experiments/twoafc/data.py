"""BAPPS 2AFC data read from the folders of the official tarballs (``2afc/{train,val}/{category}/...``).

Layout (docs/reference.md §10): ``ROOT/{split}/{category}/{ref,p0,p1}/NAME.png`` and ``judge/NAME.npy``, a
triplet per NAME in sorted order. ``judge`` holds one float, the fraction of people who preferred ``p1``,
stored with shape (1,), (1, 1, 1) or (). Each image is read as RGB with PIL and resized to 64×64 with PIL's
bilinear filter; values are kept as uint8 until :func:`to_float` scales them to [0, 1].

:class:`FolderSource` is a random-access source (``len`` and ``[i]``) reading files on demand, so grain
can feed it without loading the whole data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64
IMAGES = ("ref", "p0", "p1")
TRAIN_CATEGORIES = ("traditional", "cnn", "mix")
VAL_CATEGORIES = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
CATEGORIES = {"train": TRAIN_CATEGORIES, "val": VAL_CATEGORIES}
JUDGE_SHAPES = ((), (1,), (1, 1, 1))


class DataError(ValueError):
    """The data folder does not have the BAPPS layout; the message says what is wrong and how to fix it."""


def read_image(path: str | Path) -> np.ndarray:
    """RGB, PIL bilinear resize to 64×64, uint8 (64, 64, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.uint8)


def read_judge(path: str | Path) -> np.float32:
    value = np.load(path)
    if value.shape not in JUDGE_SHAPES:
        raise DataError(f"{path}: a judge holds one number (shape (1,), (1, 1, 1) or ()), not {value.shape}")
    j = float(value.reshape(()))
    if not 0.0 <= j <= 1.0 or not np.isfinite(j):
        raise DataError(f"{path}: a judge is a fraction in [0, 1], not {j}")
    return np.float32(j)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 → float32 in [0, 1]."""
    return np.asarray(images, np.float32) / 255.0


def category_names(root: str | Path, split: str, category: str) -> list[str]:
    """The sorted triplet names of one category, after checking that its four folders match."""
    folder = Path(root) / split / category
    if not (Path(root) / split).is_dir():
        raise DataError(
            f"{Path(root) / split} does not exist: --data must be the folder holding train/ and val/ "
            "(the official tarballs' 2afc/ folder)"
        )
    if not folder.is_dir():
        present = sorted(p.name for p in (Path(root) / split).iterdir() if p.is_dir())
        raise DataError(f"category {category!r} not found in {folder.parent} (it has: {', '.join(present)})")
    stems = {}
    for sub, suffix in (*((name, ".png") for name in IMAGES), ("judge", ".npy")):
        d = folder / sub
        if not d.is_dir():
            raise DataError(f"{d} is missing: each category needs ref/, p0/, p1/ and judge/")
        stems[sub] = sorted(p.stem for p in d.iterdir() if p.suffix == suffix)
    ref = stems["ref"]
    if not ref:
        raise DataError(f"{folder / 'ref'} holds no .png images")
    for sub, names in stems.items():
        if names != ref:
            missing = sorted(set(ref) - set(names))[:3]
            extra = sorted(set(names) - set(ref))[:3]
            raise DataError(
                f"{folder / sub} does not match {folder / 'ref'}: missing {missing}, extra {extra} "
                "(every triplet needs ref, p0, p1 and judge files of the same name)"
            )
    return ref


def present_categories(root: str | Path, split: str) -> tuple[str, ...]:
    """The category folders of a split: the official ones in their order, then any others sorted."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(
            f"{folder} does not exist: --data must be the folder holding train/ and val/ "
            "(the official tarballs' 2afc/ folder)"
        )
    present = {p.name for p in folder.iterdir() if p.is_dir()}
    if not present:
        raise DataError(f"{folder} holds no category folders")
    official = [c for c in CATEGORIES.get(split, ()) if c in present]
    return tuple(official + sorted(present - set(official)))


class FolderSource:
    """Triplets of the given categories of one split, concatenated in the given order; ``[i]`` →
    ``{'ref', 'p0', 'p1': uint8 (64, 64, 3), 'judge': float32, 'category': int}``."""

    def __init__(self, root: str | Path, split: str, categories: tuple[str, ...] | None = None):
        if split not in CATEGORIES:
            raise DataError(f"split must be 'train' or 'val', not {split!r}")
        self.root, self.split = Path(root), split
        self.categories = tuple(categories) if categories else present_categories(root, split)
        self.items: list[tuple[int, str]] = []
        for c, category in enumerate(self.categories):
            self.items += [(c, n) for n in category_names(root, split, category)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        c, name = self.items[int(i)]
        folder = self.root / self.split / self.categories[c]
        out = {k: read_image(folder / k / f"{name}.png") for k in IMAGES}
        out["judge"] = read_judge(folder / "judge" / f"{name}.npy")
        out["category"] = np.int32(c)
        return out

    def read(self, indices: np.ndarray) -> dict:
        """Stacked items (the ``read`` of :func:`experiments.common.pipeline.batches`)."""
        rows = [self[i] for i in indices]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
