"""Parameters of the losses by name: initial, pretrained (the reference's 2AFC-tuned weights), the Deeploss
backbones and Adaptive's log-partition table, for the functions of :mod:`watson_jax.functions`.

    params = watson_jax.pretrained_params('Watson-DFT', 'RGB')
    d = watson_jax.watson_dft(x, y, params)

Parameters are nested dicts of float32 arrays whose leaf names are the reference's (``t_tild``, ``alpha``,
``w_tild``, ``beta``, ``w_phase_tild``, ``ly``/``lcb``/``lcr``, ``lin0``…, ``latent_alpha``…), so optax
tunes them directly. Converted weight files live in the weights folder: ``weights_dir``, else
``$WATSON_JAX_WEIGHTS``, else ``~/.cache/watson_jax``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from . import partition, registry, weights
from .errors import OptionError
from .losses import adaptive

__all__ = ["init_params", "pretrained_params", "load_backbone", "log_partition_table"]

PathLike = str | os.PathLike


def _as_jax(tree: dict) -> dict:
    return jax.tree.map(jnp.asarray, tree)


def init_params(name: str, colorspace: str = "RGB", image_size: tuple[int, ...] | None = None) -> dict:
    """The untuned initial parameters of loss ``name`` for ``colorspace`` ('RGB' or a greyscale name such
    as 'LA' or 'grey'), as JAX arrays: the reference's initial values (Watson: Watson's 1993 table and the
    paper's starting points; Adaptive: α = 1, scale = 1, for images of ``image_size`` (C, H, W), default
    (3, 64, 64)); Deeploss heads of ones (the plain channel sum). ``{}`` for L1, L2 and SSIM."""
    metric = registry.lookup(name)
    if image_size is not None and not metric.sized:
        raise OptionError(
            f"image_size is for the Adaptive loss only; {metric.name}'s parameters have no size."
        )
    size = adaptive.normalise_image_size(image_size) if metric.sized else None
    return _as_jax(metric.init_params(registry.canonical_colorspace(colorspace), size))


def pretrained_params(
    name: str, colorspace: str = "RGB", *, weights_dir: PathLike | None = None, download: bool = True
) -> dict:
    """The reference's 2AFC-tuned parameters of loss ``name`` for ``colorspace``, as JAX arrays, read from
    the converted weight file ``<stem>_{rgb,gray}.npz`` in the weights folder (Adaptive's exist for
    3×64×64 images), what ``LossProvider().get_loss_function(name, colorspace)`` holds. Raises
    :class:`watson_jax.MissingWeightsError` naming the converter command when the file is absent.
    ``{}`` for L1, L2 and SSIM."""
    metric = registry.lookup(name)
    space = registry.canonical_colorspace(colorspace)
    template = metric.init_params(space, adaptive.PRETRAINED_SIZE if metric.sized else None)
    if metric.weights_stem is None:
        return {}
    return _as_jax(
        weights.load_pretrained(metric.weights_stem, space, template, weights_dir, download=download)
    )


def load_backbone(name: str, *, weights_dir: PathLike | None = None, download: bool = True) -> dict:
    """The frozen ImageNet backbone of Deeploss loss ``name`` ('Deeploss-VGG' or 'Deeploss-Squeeze'), as
    JAX arrays: ``{layer: {'kernel': HWIO, 'bias': (O,)}}``, converted from torchvision's checkpoint."""
    metric = registry.lookup(name)
    if metric.backbone is None:
        deep = [m.name for m in registry.METRICS if m.backbone is not None]
        raise OptionError(f"{metric.name} has no backbone; the losses with one are {', '.join(deep)}.")
    return _as_jax(weights.load_backbone(metric.backbone, weights_dir, download=download))


def log_partition_table(weights_dir: PathLike | None = None) -> dict[str, np.ndarray]:
    """Barron's log-partition table of the Adaptive loss, ``{'values', 'tangents'}``: read from the weights
    folder, or computed once and cached there (:mod:`watson_jax.partition`)."""
    table = partition.table(weights_dir)
    return {k: table[k] for k in ("values", "tangents")}
