"""Watson's perceptual model on 8×8 block transforms: Watson-DCT (SPEC §4) and Watson-DFT (SPEC §5).

For one channel, with c0 the block coefficients of the target y (the masking reference) and c1 those of
the input x (for the DFT: amplitudes A = √((Re c + ε)² + (Im c + ε)²)), and T = exp(t_tild):

  t_L = T · ((c0_DC + ε) / (L̄ + ε))^α                      luminance masking
  s   = smoothmax(t_L, (|c0| + ε)^w · t_L^(1−w)),  w = sigmoid(w_tild)      contrast masking
  d   = (|(c0 − c1) / s| + ε)^β                              per-coefficient error
  D   = (Σ_{blocks,u,v} (d + ε))^(1/β)                        Minkowski pooling, one value per image

L̄ is the mean DC coefficient of the target: over each image's blocks (``luminance='image'``) or over the
whole batch (``'batch'``, the reference). The DFT adds a phase term Σ w_φ · arccos(cos(φ0 − φ1)(1 − 1e-7)),
with w_φ = exp(w_phase_tild), zero on the four purely real bins except when tuning. In tuning mode a
dropout (p = 0.5, scaled by 2) acts on the per-coefficient amplitude and phase terms of the DFT.
RGB images go to YCbCr; one set of parameters per channel (``ly``, ``lcb``, ``lcr``) and
D = Σ_c softmax(w_tild)_c · D_c. ε = 1e-10.

How it is computed. The channels are one more batch axis: the coefficients of all channels are
(N, B, C, U, V) arrays in the block layout of :mod:`watson_jax.blocks`, and every term is elementwise work
with the channel's parameters broadcast along that axis, one fused computation for any number of channels.
The change of each coefficient is computed as the transform of x − y (:func:`_terms`), exactly 0 where the
images agree. The DFT's phase term uses no trigonometric function (XLA's CPU code for atan2 and arccos is
scalar, ~20 ns per number): the sine and cosine of φ1 − φ0 are cross and dot products of unit phasors, and
arccos is :func:`acos_one_minus`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import blocks
from ..color import YCBCR_MATRIX, YCBCR_OFFSET
from ..mathops import abs_

EPS = 1e-10
#: cos(Δφ) is scaled by this before arccos to keep the derivative of arccos finite (SPEC §5).
ACOS_SHRINK = 1 - 1e-7
YCBCR_CHANNELS = ("ly", "lcb", "lcr")
#: Bins of the one-sided 8×5 DFT whose coefficients are real for real blocks: their phase is 0 or π.
REAL_BINS = ((0, 0), (0, 4), (4, 0), (4, 4))

#: Watson (1993) luminance thresholds, rows u (vertical frequency), columns v.
WATSON_TABLE = np.array([
    [1.40, 1.01, 1.16, 1.66, 2.40, 3.43, 4.79, 6.56],
    [1.01, 1.45, 1.32, 1.52, 2.00, 2.71, 3.67, 4.93],
    [1.16, 1.32, 2.24, 2.59, 2.98, 3.64, 4.60, 5.88],
    [1.66, 1.52, 2.59, 3.77, 4.55, 5.30, 6.28, 7.60],
    [2.40, 2.00, 2.98, 4.55, 6.15, 7.46, 8.71, 10.17],
    [3.43, 2.71, 3.64, 5.30, 7.46, 9.62, 11.58, 13.51],
    [4.79, 3.67, 4.60, 6.28, 8.71, 11.58, 14.50, 17.29],
    [6.56, 4.93, 5.88, 7.60, 10.17, 13.51, 17.29, 21.15],
])

TRANSFORMS = ("dct", "dft")


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def init_channel_params(transform: str) -> dict:
    """Initial (untuned) parameters of one channel, float32 (SPEC §4–5 tables)."""
    f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
    if transform == "dct":
        return {"t_tild": f32(np.log(WATSON_TABLE)), "alpha": f32(0.649), "w_tild": f32(_logit(0.7)),
                "beta": f32(4.0)}
    if transform == "dft":
        return {"t_tild": f32(np.zeros((8, 5))), "alpha": f32(0.1), "w_tild": f32(_logit(0.2)),
                "beta": f32(1.0), "w_phase_tild": f32(np.full((8, 5), -2.0))}
    raise ValueError(f"unknown transform {transform!r}; expected one of {TRANSFORMS}")


def init_params(transform: str, colorspace: str) -> dict:
    """Initial parameters: one channel's dict for greyscale, or ``{w_tild, ly, lcb, lcr}`` for RGB."""
    if colorspace == "grey":
        return init_channel_params(transform)
    params = {"w_tild": np.zeros(3, np.float32)}
    params.update({name: init_channel_params(transform) for name in YCBCR_CHANNELS})
    return params


def smoothmax(a, b):
    """(a eᵃ + b eᵇ) / (eᵃ + eᵇ) = b + (a − b)·σ(a − b), which cannot overflow."""
    return b + (a - b) * jax.nn.sigmoid(a - b)


# -- arccos without trigonometric functions -------------------------------------------------------------

@functools.lru_cache(maxsize=None)
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
    t = 0.125 * (1 - np.cos(np.pi * (np.arange(400) + 0.5) / 400))         # Chebyshev points in [0, 1/4]
    q_values = poly.polynomial.polyval(t, series)
    grid = np.linspace(0, 0.5, 100001)[1:]
    tolerance = max(float(jnp.finfo(dtype_name).eps) / 4, 4 * np.finfo(np.float64).eps)
    for degree in range(2, 20):
        fit = poly.chebyshev.Chebyshev.fit(t, q_values, degree, domain=[0, 0.25])
        q = fit.convert(kind=poly.Polynomial, domain=[0, 0.25], window=[0, 0.25]).coef
        approx = grid + grid ** 3 * poly.polynomial.polyval(grid ** 2, q)
        if np.max(np.abs(approx / np.arcsin(grid) - 1)) < tolerance:
            return tuple(float(c) for c in q)
    raise AssertionError("no polynomial fit for asin")   # pragma: no cover


def _asin_small(z: jnp.ndarray) -> jnp.ndarray:
    """asin(z) for 0 ≤ z ≤ 1/2 by the polynomial of :func:`_asin_coefficients`."""
    t = z * z
    coef = _asin_coefficients(jnp.dtype(z.dtype).name)
    q = coef[-1]
    for c in reversed(coef[:-1]):
        q = q * t + c
    return z + z * t * q


@jax.custom_jvp
def acos_one_minus(b: jnp.ndarray) -> jnp.ndarray:
    """arccos(1 − b) for 0 ≤ b ≤ 1 (and a rounding error beyond 1), from b itself so that arguments near 1
    keep their precision: 2·asin(√(b/2)) for b ≤ 1/2, π/2 − asin(1 − b) above. Derivative 1/√(b(2 − b)),
    exact (not the polynomial's), finite for 0 < b < 2."""
    small = b <= 0.5
    half_angle = _asin_small(jnp.sqrt(jnp.where(small, b, 0.5) / 2))
    rest = _asin_small(jnp.where(small, 0.5, 1 - b))
    return jnp.where(small, 2 * half_angle, np.pi / 2 - rest)


@acos_one_minus.defjvp
def _acos_one_minus_jvp(primals, tangents):
    (b,), (db,) = primals, tangents
    return acos_one_minus(b), db / jnp.sqrt(b * (2 - b))


def _phasor(re: jnp.ndarray, im: jnp.ndarray):
    """(cos φ, sin φ) of φ = atan2(im, re): (re, im) / its norm, and (1, 0) where that norm is 0 (atan2(0, 0)
    = 0)."""
    r2 = re * re + im * im
    nonzero = r2 > 0
    inv = 1 / jnp.sqrt(jnp.where(nonzero, r2, 1))
    return jnp.where(nonzero, re * inv, 1), jnp.where(nonzero, im * inv, 0)


def phase_error(target, inp, same) -> jnp.ndarray:
    """arccos(k·cos(φ0 − φ1)), φ = atan2(Im c, Re c + ε), k = :data:`ACOS_SHRINK` (SPEC §5), for target and
    input coefficients given as (re, im) pairs, without trigonometric functions.

    With e0, e1 the unit phasors of the two angles, sin(φ1 − φ0) = e0 × e1 and cos = e0·e1, and
    1 − |cos| = sin² / (1 + |cos|) without cancellation; arccos(k cos) is arccos(1 − ((1 − k) + k(1 − |cos|)))
    by :func:`acos_one_minus`, or π minus it for a negative cosine. Where ``same`` (the coefficients are equal
    by linearity: that of x − y is 0) the angles are equal by definition, so an image against itself gets
    arccos(k) in every bin, as the reference, with a gradient of exactly 0. Gradients are finite: the
    argument of arccos stays ≥ 1 − k > 0 from 1.
    """
    (re0, im0), (re1, im1) = target, inp
    e0x, e0y = _phasor(re0 + EPS, im0)
    e1x, e1y = _phasor(re1 + EPS, im1)
    sin = jnp.where(same, 0, e0x * e1y - e0y * e1x)
    cos = jnp.where(same, 1, e0x * e1x + e0y * e1y)
    # |cos| as the branch below sees it: at cos = 0 exactly its derivative is that of cos ≥ 0's branch.
    abs_cos = jnp.where(cos >= 0, cos, -cos)
    # Not clamped at 1: rounding can take it a little above (phasors an ulp longer than 1), which
    # acos_one_minus takes in its stride, while a clamp would cut the slope where |cos| rounds to 0.
    one_minus_abs_cos = sin * sin / (1 + abs_cos)
    k = jnp.asarray(ACOS_SHRINK, re0.dtype)
    angle = acos_one_minus((1 - k) + k * one_minus_abs_cos)
    return jnp.where(cos >= 0, angle, np.pi - angle)


def amplitude_and_change(target, inp, change):
    """The amplitudes A0 = √((Re c0 + ε)² + (Im c0 + ε)²) of the target (SPEC §5) and A1 − A0 of the input,
    coefficients given as (re, im) pairs, and ``change`` = c1 − c0 computed as the coefficients of x − y.
    A1 − A0 = (A1² − A0²)/(A1 + A0) = (c1 − c0)·(z0 + z1)/(A0 + A1), z = c + ε(1 + i): no cancellation, and
    exactly 0 where the coefficients are equal by linearity."""
    (re0, im0), (re1, im1), (d_re, d_im) = target, inp, change
    z0x, z0y, z1x, z1y = re0 + EPS, im0 + EPS, re1 + EPS, im1 + EPS
    amp0 = jnp.sqrt(z0x * z0x + z0y * z0y)
    total = amp0 + jnp.sqrt(z1x * z1x + z1y * z1y)
    return amp0, (d_re * (z0x + z1x) + d_im * (z0y + z1y)) / jnp.where(total > 0, total, 1)


# -- the terms of all channels at once ---------------------------------------------------------------------

def channel_params(params: dict) -> dict:
    """The per-channel parameters stacked along a channel axis and shaped to broadcast against coefficients
    (N, B, C, U, V): tables (C, U, V), scalars (C, 1, 1); plus ``weight``, the channel weights
    softmax(w_tild), (C,) (1 for grey)."""
    per_channel = [params[name] for name in YCBCR_CHANNELS] if "ly" in params else [params]
    stacked = {}
    for name in per_channel[0]:
        value = jnp.stack([jnp.asarray(p[name]) for p in per_channel])
        stacked[name] = value.reshape(-1, 1, 1) if value.ndim == 1 else value
    stacked["weight"] = (jax.nn.softmax(params["w_tild"]) if "ly" in params
                         else jnp.ones((1,), stacked["alpha"].dtype))
    return stacked


def _mean_dc(dc: jnp.ndarray, luminance: str) -> jnp.ndarray:
    """L̄: mean DC of the target per channel, over each image's blocks ('image', (N, 1, C)) or over the
    whole batch ('batch', (1, 1, C)). dc: (N, B, C)."""
    axes = (1,) if luminance == "image" else (0, 1)
    return jnp.mean(dc, axis=axes, keepdims=True)


def masked_error(p: dict, ref: jnp.ndarray, change: jnp.ndarray, luminance: str) -> jnp.ndarray:
    """Per-coefficient errors d = (|(inp − ref)/s| + ε)^β, (N, B, C, U, V).

    ``ref`` are the target's real coefficients (DCT values or DFT amplitudes), ``change`` = inp − ref the
    input's difference from them.
    """
    dc = ref[..., 0, 0]
    log_ratio = jnp.log((dc + EPS) / (_mean_dc(dc, luminance) + EPS))[..., None, None]
    log_t_l = p["t_tild"] + p["alpha"] * log_ratio        # log t_L = log T + α log(DC / L̄)
    w = jax.nn.sigmoid(p["w_tild"])
    # Powers of positive numbers written as exp(b·log a): the same values to a few ulp, and XLA's CPU
    # code for ** is several times slower.
    s = smoothmax(jnp.exp(log_t_l), jnp.exp(w * jnp.log(abs_(ref) + EPS) + (1 - w) * log_t_l))
    return jnp.exp(p["beta"] * jnp.log(abs_(change / s) + EPS))


def _dropout(key, terms: jnp.ndarray) -> jnp.ndarray:
    keep = jax.random.bernoulli(key, 0.5, terms.shape)
    return jnp.where(keep, 2 * terms, jnp.zeros_like(terms))


def phase_weights(w_phase_tild: jnp.ndarray, tuning: bool) -> jnp.ndarray:
    """w_φ = exp(w_phase_tild) ((..., U, V) tables), with the four purely real bins set to 0 unless tuning."""
    w = jnp.exp(w_phase_tild)
    if tuning:
        return w
    mask = np.ones((blocks.BLOCK, blocks.HALF), bool)
    for u, v in REAL_BINS:
        mask[u, v] = False
    return jnp.where(mask, w, jnp.zeros_like(w))


def _coefficients(transform: str, img: jnp.ndarray, offset: bool = True):
    """Block coefficients (N, B, C, U, V) of the one grey plane or the Y, Cb, Cr planes of NHWC images: the
    DCT, or the DFT's (re, im). ``offset=False`` leaves out the constant offsets of Cb and Cr, for a
    difference of images."""
    if img.shape[-1] == 1:
        planes = blocks.block_planes(img, ((1.0,),))
    else:
        planes = blocks.block_planes(img, YCBCR_MATRIX, YCBCR_OFFSET if offset else None)
    return blocks.block_dct(planes) if transform == "dct" else blocks.block_dft(planes)


def _terms(p: dict, x, y, *, transform: str, luminance: str, tuning: bool = False, key=None):
    """The per-coefficient terms of every channel: (d, weighted phase terms or None), each
    (N, B, C, U, V). The DCT has no tuning-mode behaviour.

    The transforms are linear, so the change of each coefficient is that of x − y, computed directly: it is
    exactly 0 where the images agree (so x == y gives the reference's value and a gradient of exactly 0,
    whatever XLA fuses) and accurate where they barely differ. The DFT's phases come from the coefficients
    of x and y themselves, as in the reference (the sign of a real coefficient near 0 decides its phase).
    """
    target = _coefficients(transform, y)
    if transform == "dct":
        return masked_error(p, target, _coefficients(transform, x - y, offset=False), luminance), None
    inp = _coefficients(transform, x)
    change = tuple(_with_derivative(d, c1 - c0) for d, c1, c0 in
                   zip(_coefficients(transform, x - y, offset=False), inp, target))
    amp0, amp_change = amplitude_and_change(target, inp, change)
    d = masked_error(p, amp0, amp_change, luminance)
    same = (change[0] == 0) & (change[1] == 0)
    phase = phase_weights(p["w_phase_tild"], tuning) * phase_error(target, inp, same)
    if tuning:
        amp_key, phase_key = jax.random.split(key)
        d = _dropout(amp_key, d)
        phase = _dropout(phase_key, phase)
    return d, phase


def _with_derivative(value: jnp.ndarray, like: jnp.ndarray) -> jnp.ndarray:
    """``value`` exactly (x + 0 = x), differentiated as ``like``: value + (like − like), only the first
    ``like`` varying. For the coefficients of x − y, which equal those of x less those of y but round
    differently: their derivative goes through the transforms already differentiated, not a third one."""
    return jax.lax.stop_gradient(value) + (like - jax.lax.stop_gradient(like))


def distance(params: dict, x: jnp.ndarray, y: jnp.ndarray, *, transform: str, luminance: str = "image",
             tuning: bool = False, key=None) -> jnp.ndarray:
    """Watson distance of each image pair, (N,): per channel the Minkowski pool of the per-coefficient
    terms (plus the phase terms for the DFT), channels weighted by softmax(w_tild).

    Args:
      params: parameters as returned by :func:`init_params` (or pretrained), cast to x's dtype.
      x, y: input and target (the masking reference), NHWC with 1 (grey) or 3 (RGB) channels, H and W
        multiples of 8, already shifted if a random shift applies.
      transform: 'dct' or 'dft'.
      luminance: 'image' (L̄ per image) or 'batch' (L̄ over the whole batch, as the reference).
      tuning: phase of the real DFT bins active and dropout on (DFT only); needs ``key``.
      key: PRNG key for the dropout.
    """
    p = channel_params(params)
    d, phase = _terms(p, x, y, transform=transform, luminance=luminance, tuning=tuning, key=key)
    per_channel = jnp.sum(d + EPS, axis=(1, 3, 4)) ** (1 / p["beta"][:, 0, 0])          # (N, C)
    if phase is not None:
        per_channel = per_channel + jnp.sum(phase, axis=(1, 3, 4))
    return jnp.sum(per_channel * p["weight"], axis=1)


def distance_map(params: dict, x: jnp.ndarray, y: jnp.ndarray, *, transform: str,
                 luminance: str = "image") -> jnp.ndarray:
    """Where the images differ, (N, H, W), summing over each image to its distance (evaluation mode).

    Per channel, the pooled term (Σ_b e_b)^(1/β), with e_b = Σ_{u,v} (d + ε) of block b, is shared out
    among the blocks in proportion to e_b; a block's phase terms are its own. The channels are weighted as
    in :func:`distance`, and each block's share is spread evenly over its 64 pixels.
    """
    p = channel_params(params)
    d, phase = _terms(p, x, y, transform=transform, luminance=luminance)
    per_block = jnp.sum(d + EPS, axis=(3, 4))                                   # (N, B, C)
    total = jnp.sum(per_block, axis=1, keepdims=True)
    shares = per_block / total * total ** (1 / p["beta"][:, 0, 0])
    if phase is not None:
        shares = shares + jnp.sum(phase, axis=(3, 4))
    block_map = jnp.sum(shares * p["weight"], axis=2)                            # (N, B)
    per_pixel = jnp.broadcast_to(block_map[..., None, None] / blocks.BLOCK ** 2,
                                 (*block_map.shape, blocks.BLOCK, blocks.BLOCK))
    return blocks.from_blocks(per_pixel, x.shape[1], x.shape[2])
