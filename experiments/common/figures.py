"""Figure helpers, headless: grouped bar charts (matplotlib) and image grids (PIL), saved atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import files


def grouped_bars(
    path: str | Path,
    groups: list[str],
    series: dict[str, list[float]],
    *,
    ylabel: str,
    title: str = "",
    hline: tuple[str, list[float]] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """One bar per series in each group; ``hline`` draws a per-group marker (e.g. a human ceiling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(series)) / 2), 4))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=name)
    if hline is not None:
        label, values = hline
        ax.scatter(x, values, marker="_", s=2000, color="black", label=label, zorder=3)
    ax.set_xticks(x, groups, rotation=20)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    with files.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return Path(path)


def image_grid(
    path: str | Path,
    rows: list[np.ndarray],
    *,
    enlarge: int = 1,
    labels: list[str] | None = None,
    gap: int = 2,
) -> Path:
    """Rows of images as one PNG, saved atomically. Each row is (K, H, W, C) in [0, 1] (C = 1 or 3; rows may
    hold different K), enlarged ``enlarge``× by nearest-neighbour repetition, ``gap`` white pixels between
    images; ``labels`` (one per row) are written in a white margin on the left."""
    from PIL import Image, ImageDraw

    if not rows:
        raise ValueError("image_grid needs at least one row of images.")
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows.")
    h, w = rows[0].shape[1:3]
    if any(r.ndim != 4 or r.shape[1:3] != (h, w) for r in rows):
        raise ValueError(f"every row must be (K, {h}, {w}, C); got {[r.shape for r in rows]}.")
    cell_h, cell_w = h * enlarge, w * enlarge
    margin = 0 if labels is None else 8 + 7 * max(len(s) for s in labels)
    columns = max(len(r) for r in rows)
    canvas = np.full(
        (len(rows) * (cell_h + gap) + gap, margin + columns * (cell_w + gap) + gap, 3), 255, np.uint8
    )
    for i, row in enumerate(rows):
        pixels = np.clip(np.rint(np.asarray(row, np.float64) * 255), 0, 255).astype(np.uint8)
        pixels = np.repeat(np.repeat(pixels, enlarge, axis=1), enlarge, axis=2)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        top = gap + i * (cell_h + gap)
        for j, image in enumerate(pixels):
            left = margin + gap + j * (cell_w + gap)
            canvas[top : top + cell_h, left : left + cell_w] = image
    picture = Image.fromarray(canvas)
    if labels is not None:
        draw = ImageDraw.Draw(picture)
        for i, label in enumerate(labels):
            draw.text((4, gap + i * (cell_h + gap) + cell_h // 2 - 5), label, fill=(0, 0, 0))
    with files.atomic_open(path, "wb") as f:
        picture.save(f, format="png")
    return Path(path)
