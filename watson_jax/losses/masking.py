"""Watson's luminance and contrast masking of block coefficients (docs/reference.md §4–5), shared by
Watson-DCT and
Watson-DFT.

For one channel, with ``ref`` the target's coefficients (DCT values, or DFT amplitudes A0) and ``change``
the input's difference from them, T = exp(t_tild), w = sigmoid(w_tild), ε = 1e-10:

  t_L = T · ((DC + ε) / (L̄ + ε))^α                              luminance masking
  s   = smoothmax(t_L, (|ref| + ε)^w · t_L^(1−w))                contrast masking
  d   = (|change / s| + ε)^β                                     per-coefficient error

DC is each block's ``ref`` at (0, 0), L̄ its mean over an image's blocks (``luminance='image'``) or over the
batch (``'batch'``, the reference). Arrays are (N, B, C, U, V): images, blocks, channels, frequencies, with
the per-channel parameters broadcast along the three last axes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..constants import WATSON_EPS as EPS
from ..mathops import abs_, reciprocal_or_zero


def smoothmax(a, b):
    """(a eᵃ + b eᵇ) / (eᵃ + eᵇ) = b + (a − b)·σ(a − b), which cannot overflow."""
    return b + (a - b) * jax.nn.sigmoid(a - b)


def smoothmax_slope(a, b):
    """∂ smoothmax(a, b) / ∂a = σ + (a − b)·σ(1 − σ), σ = σ(a − b); the slope in b is 1 minus it."""
    sig = jax.nn.sigmoid(a - b)
    return sig + (a - b) * sig * (1 - sig)


def log_luminance_ratio(dc: jax.Array, luminance: str) -> jax.Array:
    """log((DC + ε)/(L̄ + ε)) per block, (N, B, C, 1, 1), from the target's DC coefficients ``dc``
    (N, B, C); L̄ is their mean over each image's blocks ('image') or over the whole batch ('batch')."""
    axes = (1,) if luminance == "image" else (0, 1)
    mean = jnp.mean(dc, axis=axes, keepdims=True)
    return jnp.log((dc + EPS) / (mean + EPS))[..., None, None]


class Masking(NamedTuple):
    """The per-coefficient error of :func:`masking` and the steps to it, each (N, B, C, U, V) (``w``: the
    channels' (C, 1, 1) weights)."""

    log_t_l: jax.Array  # log t_L
    t_l: jax.Array  # t_L
    contrast: jax.Array  # (|ref| + ε)^w · t_L^(1−w)
    w: jax.Array  # sigmoid(w_tild)
    log_ref: jax.Array  # log(|ref| + ε)
    s: jax.Array  # smoothmax(t_L, contrast)
    ratio: jax.Array  # change / s
    log_err: jax.Array  # log(|ratio| + ε)
    d: jax.Array  # (|ratio| + ε)^β


def masking(p: dict, ref: jax.Array, change: jax.Array, log_ratio: jax.Array) -> Masking:
    """The per-coefficient error d and the steps to it (:class:`Masking`). ``log_ratio`` is
    :func:`log_luminance_ratio` of the target's DC; ``p`` the stacked channel parameters."""
    log_t_l = p["t_tild"] + p["alpha"] * log_ratio  # log t_L = log T + α log(DC / L̄)
    w = jax.nn.sigmoid(p["w_tild"])
    log_ref = jnp.log(abs_(ref) + EPS)
    # Powers of positive numbers written as exp(b·log a): the same values to a few ulp, and XLA's CPU
    # code for ** is several times slower.
    # t_L = T · (DC / L̄)^α as the product of a per-frequency and a per-block factor: one exp per coefficient
    # fewer than exp(log t_L).
    t_l = jnp.exp(p["t_tild"]) * jnp.exp(p["alpha"] * log_ratio)
    contrast = jnp.exp(w * log_ref + (1 - w) * log_t_l)
    s = smoothmax(t_l, contrast)
    ratio = change / s
    log_err = jnp.log(abs_(ratio) + EPS)
    return Masking(log_t_l, t_l, contrast, w, log_ref, s, ratio, log_err, jnp.exp(p["beta"] * log_err))


def amplitude(re: jax.Array, im: jax.Array) -> jax.Array:
    """A = √((Re c + ε)² + (Im c + ε)²), the amplitude of a DFT coefficient in the reference
    (docs/reference.md §5)."""
    return jnp.sqrt((re + EPS) ** 2 + (im + EPS) ** 2)


class Amplitudes(NamedTuple):
    """What :func:`amplitudes` returns, each (N, B, C, U, V); the unit vectors as (re, im) pairs."""

    amp0: jax.Array  # A0, the target's amplitudes
    change: jax.Array  # A1 − A0
    unit0: tuple[jax.Array, jax.Array]  # z0/A0: ∂A0/∂(Re c0, Im c0); 0 where A0 = 0
    unit1: tuple[jax.Array, jax.Array]  # z1/A1


def amplitudes(target, inp) -> Amplitudes:
    """The amplitudes A (:func:`amplitude`) of target and input coefficients given as (re, im) pairs,
    A1 − A0 without cancellation, and their derivatives (:class:`Amplitudes`).

    With z = c + ε(1 + i), A1 − A0 = (A1² − A0²)/(A1 + A0) = (c1 − c0)·(z0 + z1)/(A0 + A1), exactly 0 where
    the coefficients are equal.
    """
    (re0, im0), (re1, im1) = target, inp
    z0x, z0y, z1x, z1y = re0 + EPS, im0 + EPS, re1 + EPS, im1 + EPS
    amp0, amp1 = amplitude(re0, im0), amplitude(re1, im1)
    total = amp0 + amp1
    change = ((re1 - re0) * (z0x + z1x) + (im1 - im0) * (z0y + z1y)) / jnp.where(total > 0, total, 1)
    inv0, inv1 = reciprocal_or_zero(amp0), reciprocal_or_zero(amp1)
    return Amplitudes(amp0, change, (z0x * inv0, z0y * inv0), (z1x * inv1, z1y * inv1))
