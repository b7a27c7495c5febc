"""Colour steps shared by the losses: RGB → grey and RGB → YCbCr, on NHWC arrays."""

from __future__ import annotations

from collections.abc import Sequence

import jax

from .constants import GREY_WEIGHTS, YCBCR_MATRIX, YCBCR_OFFSET

__all__ = ["GREY_WEIGHTS", "YCBCR_MATRIX", "YCBCR_OFFSET", "rgb_to_grey", "weighted_sum"]


def weighted_sum(weights: Sequence[float], arrays: Sequence[jax.Array]) -> jax.Array:
    """(a0·w0 + a1·w1) + a2·w2 + …, left to right, the weights Python floats (so they take the arrays'
    dtype): the reference's order for its colour conversions, exact float32 on every backend."""
    total = arrays[0] * weights[0]
    for w, a in zip(weights[1:], arrays[1:]):
        total = total + a * w
    return total


def rgb_to_grey(x: jax.Array) -> jax.Array:
    """(N, H, W, 3) RGB → (N, H, W, 1) grey, evaluated as (0.3 R + 0.59 G) + 0.11 B like the reference."""
    return weighted_sum(GREY_WEIGHTS, [x[..., 0:1], x[..., 1:2], x[..., 2:3]])
