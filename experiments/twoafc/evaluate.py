"""2AFC evaluation of losses on BAPPS-layout data: per-category scores, their mean, the human ceiling.

Protocols:
- ``per-image`` (default): each image its own luminance, so the scores do not depend on batching.
- ``reference``: the original's computation: batch-coupled luminance over batches of 128 (Watson, L1, L2,
  Adaptive), 16 (Deeploss), 1 (SSIM) in file order, the last batch short.
Both use d_i = D(p_i, ref) (input p_i, target ref) in evaluation mode without the random shift, and the
per-triplet score of :func:`watson_jax.twoafc.score` (docs/reference.md §10).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from watson_jax import twoafc

from . import data, losses

REFERENCE_BATCH = {"Deeploss-VGG": 16, "Deeploss-Squeeze": 16, "SSIM": 1}
DEFAULT_REFERENCE_BATCH = 128
PER_IMAGE_BATCH = 64

#: The published scores at the reference's last commit (RGB), per category and the mean of the six.
PUBLISHED = {
    "Watson-DFT": (0.687, 0.815, 0.667, 0.578, 0.604, 0.605),
    "Watson-DCT": (0.627, 0.808, 0.617, 0.561, 0.612, 0.530),
    "Deeploss-VGG": (0.763, 0.830, 0.703, 0.600, 0.634, 0.633),
    "Deeploss-Squeeze": (0.760, 0.835, 0.709, 0.609, 0.651, 0.629),
    "L2": (0.554, 0.795, 0.654, 0.590, 0.629, 0.552),
    "SSIM": (0.592, 0.788, 0.645, 0.588, 0.567, 0.567),
    "Adaptive": (0.588, 0.796, 0.639, 0.585, 0.633, 0.541),
    "Human": (0.808, 0.844, 0.736, 0.661, 0.688, 0.686),
}
PUBLISHED_MEAN = {  # RGB / greyscale means in percent as published
    "RGB": {"L1": 63.3, "L2": 62.9, "SSIM": 62.5, "Adaptive": 63.0, "Watson-DCT": 62.6, "Watson-DFT": 65.9,
            "Deeploss-VGG": 69.4, "Deeploss-Squeeze": 69.9, "Human": 73.7},
    "LA": {"L1": 60.8, "L2": 60.5, "SSIM": 60.8, "Adaptive": 60.4, "Watson-DCT": 60.5, "Watson-DFT": 63.6,
           "Deeploss-VGG": 65.9, "Deeploss-Squeeze": 66.2, "Human": 73.7},
}  # fmt: skip


def reference_batch(name: str) -> int:
    return REFERENCE_BATCH.get(name, DEFAULT_REFERENCE_BATCH)


def load_category(source, category_index: int) -> dict:
    """All triplets of one category of a source, uint8 images, in file order."""
    idx = (
        [i for i, (c, _) in enumerate(source.items) if c == category_index]
        if hasattr(source, "items")
        else None
    )
    if idx is None:  # a prepared source: its categories are contiguous
        idx = list(range(int(source.offsets[category_index]), int(source.offsets[category_index + 1])))
    return source.read(np.asarray(idx))


@jax.jit
def _distances(loss, params, p0, p1, ref):
    p0, p1, ref = (jnp.asarray(a, jnp.float32) / 255.0 for a in (p0, p1, ref))
    return losses.distance(loss, params, p0, ref), losses.distance(loss, params, p1, ref)


def category_distances(loss, params, triplets: dict, *, protocol: str, batch: int) -> tuple[np.ndarray, ...]:
    """(d0, d1) of every triplet, batched as the protocol says."""
    n = len(triplets["judge"])
    d0, d1 = [], []
    for start in range(0, n, batch):
        rows = {k: triplets[k][start : start + batch] for k in data.IMAGES}
        real = len(rows["ref"])
        if protocol == "per-image" and real < batch:  # pad to one compiled shape; no coupling, so exact
            rows = {k: np.concatenate([v, np.repeat(v[:1], batch - real, 0)]) for k, v in rows.items()}
        a, b = _distances(loss, params, rows["p0"], rows["p1"], rows["ref"])
        d0.append(np.asarray(a)[:real])
        d1.append(np.asarray(b)[:real])
    return np.concatenate(d0), np.concatenate(d1)


def evaluate(
    source,
    metrics: list[str],
    colorspace: str,
    *,
    protocol: str = "per-image",
    weights_dir=None,
    pretrained: bool = True,
    batch: int | None = None,
) -> dict:
    """``{metric: {category: score, 'mean': score}, 'Human': {...}}``, scores in [0, 1]; also the per-
    metric mean over categories of the per-triplet score variance under key ``'±'`` of each entry."""
    if protocol not in ("per-image", "reference"):
        raise ValueError(f"--protocol must be 'per-image' or 'reference', not {protocol!r}")
    luminance = "batch" if protocol == "reference" else "image"
    built = {}
    for name in metrics:
        loss = losses.build(
            name, colorspace, pretrained=pretrained, luminance=luminance, weights_dir=weights_dir
        )
        size = batch or (reference_batch(loss.name) if protocol == "reference" else PER_IMAGE_BATCH)
        built[loss.name] = (loss, size)
    results = {name: {} for name in built} | {"Human": {}}
    variances = {name: [] for name in results}
    for c, category in enumerate(source.categories):
        triplets = load_category(source, c)
        judge = triplets["judge"]
        human = np.asarray(twoafc.human_agreement(judge))
        results["Human"][category] = float(human.mean())
        variances["Human"].append(float(human.var()))
        for name, (loss, size) in built.items():
            d0, d1 = category_distances(loss, loss.params, triplets, protocol=protocol, batch=size)
            s = np.asarray(twoafc.score(d0, d1, judge))
            results[name][category] = float(s.mean())
            variances[name].append(float(s.var()))
    for name, per in results.items():
        per["mean"] = float(np.mean([per[c] for c in source.categories]))
        per["±"] = float(np.mean(variances[name]))
    return results


def markdown(results: dict, categories: tuple[str, ...]) -> str:
    head = "| metric | " + " | ".join(categories) + " | mean |"
    lines = [head, "|" + "---|" * (len(categories) + 2)]
    for name, per in results.items():
        cells = [f"{per[c]:.3f}" for c in categories] + [f"**{per['mean']:.3f}**"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(path, results: dict, categories: tuple[str, ...], *, compare_published: bool = False):
    """Score per metric per category and overall, the human ceiling as markers; published bars beside."""
    from experiments.common import figures

    groups = list(categories) + ["mean"]
    series = {}
    for name, per in results.items():
        if name == "Human":
            continue
        series[name] = [per[g] for g in groups]
        if compare_published and name in PUBLISHED:
            pub = dict(zip(data.VAL_CATEGORIES, PUBLISHED[name]))
            pub["mean"] = float(np.mean(PUBLISHED[name]))
            series[f"{name} (published)"] = [pub.get(g, np.nan) for g in groups]
    human = [results["Human"][g] for g in groups]
    return figures.grouped_bars(
        path, groups, series, ylabel="2AFC score", title="2AFC agreement with people", hline=("Human", human),
        ylim=(0.4, 1.0),
    )  # fmt: skip
