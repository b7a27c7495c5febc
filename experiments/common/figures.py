"""Figure helpers (matplotlib, headless): grouped bar charts saved atomically as PNG."""

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
