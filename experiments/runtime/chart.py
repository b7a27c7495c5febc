"""The benchmark's bar chart: ms/step of JAX and PyTorch per row, log scale, as a small PNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from experiments.runtime.names import COLORSPACES, label


def draw_chart(path: Path, rows: list[dict], title: str) -> None:
    """Grouped bars of ms/step (log scale), JAX and PyTorch per loss and colour space, saved as a
    16-colour PNG at ``path`` (written whole or not at all); nothing is written if no row has a time."""
    from PIL import Image, ImageDraw, ImageFont

    groups = [
        (
            label(r).replace("Deeploss-", "DL-").replace(" (float32)", " f32"),
            COLORSPACES[r["colorspace"]],
            (r.get("jax") or {}).get("ms_per_step"),
            (r.get("torch") or {}).get("ms_per_step"),
        )
        for r in rows
    ]
    values = [v for *_, a, b in groups for v in (a, b) if v]
    if not values:
        return
    lo, hi = 10 ** np.floor(np.log10(min(values))), 10 ** np.ceil(np.log10(max(values)))
    hi = hi * 10 if hi == lo else hi
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow 10.0 (pyproject allows pillow >= 10): load_default has size= since 10.1
        font = ImageFont.load_default()
    left, right, top, bottom, group_w, bar_w = 50, 16, 48, 44, 78, 26
    width, height = max(left + right + group_w * len(groups), 360), 340
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    plot_h = height - top - bottom
    span = np.log10(hi) - np.log10(lo)

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (np.log10(v) - np.log10(lo)) / span)

    decade = lo
    while decade <= hi * 1.0001:
        y = y_of(decade)
        draw.line([(left, y), (width - right, y)], fill=(215, 215, 215))
        draw.text((4, y - 6), f"{decade:g}", fill="black", font=font)
        decade *= 10
    colours = {"JAX": (31, 119, 180), "PyTorch": (255, 127, 14)}
    for i, (name, colour_space, *times) in enumerate(groups):
        x0 = left + i * group_w + (group_w - 2 * bar_w) // 2
        for k, (v, colour) in enumerate(zip(times, colours.values())):
            if v:
                draw.rectangle([x0 + bar_w * k, y_of(v), x0 + bar_w * (k + 1) - 2, top + plot_h], fill=colour)
        for line_no, text in enumerate((name, colour_space)):
            draw.text(
                (left + i * group_w + 3, top + plot_h + 5 + 13 * line_no),
                text[:12],
                fill="black",
                font=font,
            )
    draw.line([(left, top), (left, top + plot_h)], fill="black")
    draw.text((left, 6), f"{title}: ms per step, log scale (lower is faster)", fill="black", font=font)
    for k, (name, colour) in enumerate(colours.items()):
        draw.rectangle([left + 80 * k, 26, left + 80 * k + 10, 36], fill=colour)
        draw.text((left + 80 * k + 14, 24), name, fill="black", font=font)
    partial = path.with_name(path.name + ".partial")
    img.convert("P", palette=Image.ADAPTIVE, colors=16).save(partial, format="PNG", optimize=True)
    os.replace(partial, path)
