"""How the benchmark names its rows: the colour spaces' labels and a row's loss label."""

from __future__ import annotations

#: Colour space key → its label in jobs and tables (and the LossProvider's colorspace argument).
COLORSPACES = {"rgb": "RGB", "grey": "grey"}


def label(row: dict) -> str:
    """A row's loss as the tables name it: 'Deeploss-VGG (float32)' for a full-float32 row."""
    name = row["loss"]
    return name if row["precision"] == "default" else f"{name} (float32)"
