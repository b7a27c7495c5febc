"""The one place that turns a loss name into the distance callable the 2AFC code uses: the provider's
façade over the typed functions of :mod:`watson_jax.functions`, which adds what a command line needs
(losses by name, pretrained weights from a folder, greyscale conversion of RGB images)."""

from __future__ import annotations

import jax

from watson_jax import registry
from watson_jax.provider import Loss, LossProvider


def canonical(name: str) -> str:
    return registry.lookup(name).name


def build(name: str, colorspace: str, *, pretrained: bool, luminance: str, weights_dir=None) -> Loss:
    """A loss returning one distance per image, deterministic (no random shift)."""
    return LossProvider().get_loss_function(
        name,
        colorspace,
        reduction="none",
        deterministic=True,
        pretrained=pretrained,
        luminance=luminance,
        weights_dir=weights_dir,
    )


def distance(loss: Loss, params, x: jax.Array, y: jax.Array, key=None, *, tuning: bool = False) -> jax.Array:
    """D(x, y) per image, (N,): x the input, y the target (Watson's masking reference)."""
    return loss.apply(params, x, y, key if loss.needs_key(tuning=tuning) else None, tuning=tuning)


def has_parameters(name: str) -> bool:
    return registry.lookup(name).weights_stem is not None


def weights_stem(name: str) -> str:
    return registry.lookup(name).weights_stem
