"""Synthetic data in the BAPPS layout, for tests and quick runs (no real images, no files in the repo).

Each reference is a smooth random colour image; p0 and p1 add two distortions of equal pixel energy, one
fine-grained noise and one coarse blotch pattern; the synthetic "people" prefer the fine noise (Watson-style
masking: high frequencies are less visible), with judges drawn around that preference. So a loss that
weights low frequencies more can learn the preference; plain L2 sees two equal distortions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _smooth(rng, size: int, cells: int) -> np.ndarray:
    coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), np.float32)


def make_bapps(
    root: str | Path,
    *,
    splits: dict[str, tuple[str, ...]] | None = None,
    per_category: int = 6,
    size: int = 96,
    seed: int = 0,
    judges: int = 5,
) -> Path:
    """Write ``root/{split}/{category}/{ref,p0,p1,judge}`` and return ``root``."""
    root = Path(root)
    splits = splits or {"train": ("traditional", "cnn", "mix"), "val": ("traditional", "cnn")}
    rng = np.random.default_rng(seed)
    for split, categories in splits.items():
        for category in categories:
            folder = root / split / category
            for sub in ("ref", "p0", "p1", "judge"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            for i in range(per_category):
                ref = _smooth(rng, size, 6)
                fine = rng.normal(0, 1, (size, size, 3))
                coarse = _smooth(rng, size, 12) - 127.5
                amp = rng.uniform(10, 25)
                fine *= amp / fine.std()
                coarse *= amp / coarse.std()
                fine_is_p1 = bool(rng.integers(2))
                p0, p1 = (ref + coarse, ref + fine) if fine_is_p1 else (ref + fine, ref + coarse)
                prefer_fine = rng.binomial(judges, 0.85) / judges
                judge = prefer_fine if fine_is_p1 else 1 - prefer_fine
                name = f"{i:06d}"
                for sub, img in (("ref", ref), ("p0", p0), ("p1", p1)):
                    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / sub / f"{name}.png")
                np.save(folder / "judge" / f"{name}.npy", np.asarray([judge], np.float32))
    return root
