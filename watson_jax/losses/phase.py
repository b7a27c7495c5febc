"""The phase term of Watson-DFT without trigonometric functions (docs/reference.md §5).

P = arccos(k·cos(φ1 − φ0)) with φ = atan2(Im c, Re c + ε) and k = :data:`ACOS_SHRINK`, for target and input
coefficients c0, c1. XLA's CPU code for atan2 and arccos is scalar (~20 ns per number, against ~1 ns for
exp), so neither is used: with e0, e1 the unit phasors of the two angles, sin(φ1 − φ0) = e0 × e1 and
cos(φ1 − φ0) = e0·e1, and arccos is :func:`acos_one_minus`, a polynomial with its exact derivative.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..constants import ACOS_SHRINK
from .masking import EPS


@functools.cache
def _asin_coefficients(dtype_name: str) -> tuple[float, ...]:
    """Coefficients of Q, in increasing powers of t, with asin(z) ≈ z + z·t·Q(t), t = z², for 0 ≤ z ≤ 1/2.

    Q(t) = Σ_{n≥1} a_n t^(n−1) / (2n + 1), a_n = (2n)! / (4ⁿ n!²), is asin's Taylor series less its first
    term, divided by z³; it is summed to 60 terms (exact in float64 for t ≤ 1/4) at Chebyshev points and
    fitted by a polynomial of the lowest degree whose asin, evaluated in float64 on a dense grid, is within
    a quarter of the dtype's machine epsilon, or within float64's own rounding for float64 (degree 4 for
    float32, 11 for float64).
    """
    poly = np.polynomial
    n = np.arange(1, 61)
    series = np.cumprod((2 * n - 1) / (2 * n)) / (2 * n + 1)
    t = 0.125 * (1 - np.cos(np.pi * (np.arange(400) + 0.5) / 400))  # Chebyshev points in [0, 1/4]
    q_values = poly.polynomial.polyval(t, series)
    grid = np.linspace(0, 0.5, 100001)[1:]
    tolerance = max(float(jnp.finfo(dtype_name).eps) / 4, 4 * np.finfo(np.float64).eps)
    for degree in range(2, 20):
        fit = poly.chebyshev.Chebyshev.fit(t, q_values, degree, domain=[0, 0.25])
        q = fit.convert(kind=poly.Polynomial, domain=[0, 0.25], window=[0, 0.25]).coef
        approx = grid + grid**3 * poly.polynomial.polyval(grid**2, q)
        if np.max(np.abs(approx / np.arcsin(grid) - 1)) < tolerance:
            return tuple(float(c) for c in q)
    raise AssertionError("no polynomial fit for asin")  # pragma: no cover


def _asin_small(z: jax.Array) -> jax.Array:
    """asin(z) for 0 ≤ z ≤ 1/2 by the polynomial of :func:`_asin_coefficients`."""
    t = z * z
    coef = _asin_coefficients(jnp.dtype(z.dtype).name)
    q = coef[-1]
    for c in reversed(coef[:-1]):
        q = q * t + c
    return z + z * t * q


def acos_one_minus_slope(b: jax.Array) -> jax.Array:
    """The derivative of arccos(1 − b), 1/√(b(2 − b)), finite for 0 < b < 2."""
    return 1 / jnp.sqrt(b * (2 - b))


@jax.custom_jvp
def acos_one_minus(b: jax.Array) -> jax.Array:
    """arccos(1 − b) for 0 ≤ b ≤ 1 (and a rounding error beyond 1), from b itself so that arguments near 1
    keep their precision: 2·asin(√(b/2)) for b ≤ 1/2, π/2 − asin(1 − b) above. Derivative
    :func:`acos_one_minus_slope`, exact (not the polynomial's)."""
    small = b <= 0.5
    half_angle = _asin_small(jnp.sqrt(jnp.where(small, b, 0.5) / 2))
    rest = _asin_small(jnp.where(small, 0.5, 1 - b))
    return jnp.where(small, 2 * half_angle, np.pi / 2 - rest)


@acos_one_minus.defjvp
def _acos_one_minus_jvp(primals, tangents):
    (b,), (db,) = primals, tangents
    return acos_one_minus(b), db * acos_one_minus_slope(b)


def phasor(re: jax.Array, im: jax.Array):
    """(cos φ, sin φ, 1/r) of re + i·im = r·e^{iφ}, φ = atan2(im, re); (1, 0, 0) where r = 0 (atan2(0, 0) = 0,
    and the angle does not move there: its derivative (−sin φ, cos φ)/r is taken as 0)."""
    r2 = re * re + im * im
    nonzero = r2 > 0
    inv = jnp.where(nonzero, 1 / jnp.sqrt(jnp.where(nonzero, r2, 1)), 0)
    return jnp.where(nonzero, re * inv, 1), jnp.where(nonzero, im * inv, 0), inv


class PhaseParts(NamedTuple):
    """The phase term of :func:`phase_parts` and what its derivative needs, each the coefficients' shape."""

    angle: jax.Array  # P
    #: dP/dθ, θ = φ1 − φ0: k·sin θ / √(1 − k² cos² θ) = k·sin θ · acos_one_minus_slope(b), finite since
    #: b ≥ 1 − k > 0; 0 where the coefficients are the same
    slope: jax.Array
    d_phi0: tuple[jax.Array, jax.Array]  # (∂φ0/∂Re c0, ∂φ0/∂Im c0) = (−sin φ0, cos φ0)/r0
    d_phi1: tuple[jax.Array, jax.Array]  # the same for φ1


def phase_parts(target, inp, same) -> PhaseParts:
    """The phase term P = arccos(k·cos(φ1 − φ0)) of coefficients given as (re, im) pairs, with what its
    derivative needs; every entry has the coefficients' shape.

    1 − |cos| = sin² / (1 + |cos|) without cancellation, and arccos(k cos) = arccos(1 − b),
    b = (1 − k) + k(1 − |cos|), by :func:`acos_one_minus`, or π minus it for a negative cosine. Where
    ``same`` (the coefficients are equal) the angles are equal by definition, so an image against itself
    gets arccos(k) in every bin, as the reference, with a derivative of exactly 0 (:class:`PhaseParts`).
    """
    (re0, im0), (re1, im1) = target, inp
    e0x, e0y, inv0 = phasor(re0 + EPS, im0)
    e1x, e1y, inv1 = phasor(re1 + EPS, im1)
    sin = jnp.where(same, 0, e0x * e1y - e0y * e1x)
    cos = jnp.where(same, 1, e0x * e1x + e0y * e1y)
    # |cos| as the branch below sees it: at cos = 0 exactly its derivative is that of cos ≥ 0's branch.
    abs_cos = jnp.where(cos >= 0, cos, -cos)
    # Not clamped at 1: rounding can take it a little above (phasors an ulp longer than 1), which
    # acos_one_minus takes in its stride, while a clamp would cut the slope where |cos| rounds to 0.
    one_minus_abs_cos = sin * sin / (1 + abs_cos)
    k = jnp.asarray(ACOS_SHRINK, re0.dtype)
    b = (1 - k) + k * one_minus_abs_cos
    angle = acos_one_minus(b)
    return PhaseParts(
        angle=jnp.where(cos >= 0, angle, np.pi - angle),
        slope=k * sin * acos_one_minus_slope(b),
        d_phi0=(-e0y * inv0, e0x * inv0),
        d_phi1=(-e1y * inv1, e1x * inv1),
    )
