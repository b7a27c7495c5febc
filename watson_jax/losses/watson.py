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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import blocks
from ..color import rgb_to_ycbcr
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
    """(a eᵃ + b eᵇ) / (eᵃ + eᵇ), computed without overflow as a·σ(a − b) + b·σ(b − a)."""
    return a * jax.nn.sigmoid(a - b) + b * jax.nn.sigmoid(b - a)


def _mean_dc(dc: jnp.ndarray, luminance: str) -> jnp.ndarray:
    """L̄: mean DC of the target, per image ((N, 1, 1)) or over the whole batch (scalar)."""
    if luminance == "image":
        return jnp.mean(dc, axis=(1, 2), keepdims=True)
    return jnp.mean(dc)


def masked_error(p: dict, ref: jnp.ndarray, inp: jnp.ndarray, luminance: str) -> jnp.ndarray:
    """Per-coefficient errors d = (|(ref − inp)/s| + ε)^β, shape (N, Hb, Wb, 8, U).

    ``ref`` and ``inp`` are the target's and the input's real coefficients (DCT values or DFT amplitudes).
    """
    dc = ref[..., 0, 0]
    t_l = jnp.exp(p["t_tild"]) * (((dc + EPS) / (_mean_dc(dc, luminance) + EPS)) ** p["alpha"])[..., None, None]
    w = jax.nn.sigmoid(p["w_tild"])
    # Powers of positive numbers written as exp(b·log a): the same values to a few ulp, and XLA's CPU
    # code for ** is several times slower (the Watson-DCT value and gradient take 2.4× less time).
    s = smoothmax(t_l, jnp.exp(w * jnp.log(abs_(ref) + EPS) + (1 - w) * jnp.log(t_l)))
    return jnp.exp(p["beta"] * jnp.log(abs_((ref - inp) / s) + EPS))


def _dropout(key, terms: jnp.ndarray) -> jnp.ndarray:
    keep = jax.random.bernoulli(key, 0.5, terms.shape)
    return jnp.where(keep, 2 * terms, jnp.zeros_like(terms))


def _pool(d: jnp.ndarray, beta) -> jnp.ndarray:
    return jnp.sum(d + EPS, axis=(1, 2, 3, 4)) ** (1 / beta)


def phase_weights(w_phase_tild: jnp.ndarray, tuning: bool) -> jnp.ndarray:
    """w_φ = exp(w_phase_tild), with the four purely real bins set to 0 unless tuning."""
    w = jnp.exp(w_phase_tild)
    if tuning:
        return w
    mask = np.ones(w.shape, bool)
    for u, v in REAL_BINS:
        mask[u, v] = False
    return jnp.where(mask, w, jnp.zeros_like(w))


def _stack_pair(y, x):
    # Target and input go through one transform, so identical images get bitwise identical coefficients
    # whatever XLA fuses (separate computations may round differently), and the work is one kernel.
    return jnp.concatenate([y, x], axis=0)


def _split_pair(a):
    return jnp.split(a, 2, axis=0)


def _dct_terms(p: dict, x: jnp.ndarray, y: jnp.ndarray, *, luminance: str, tuning: bool = False, key=None):
    """Watson-DCT per-coefficient terms of one channel: (d, None), d of shape (N, Hb, Wb, 8, 8)."""
    del tuning, key   # the DCT has no tuning-mode behaviour
    ref, inp = _split_pair(blocks.block_dct(_stack_pair(y, x)))
    return masked_error(p, ref, inp, luminance), None


def _dft_terms(p: dict, x: jnp.ndarray, y: jnp.ndarray, *, luminance: str, tuning: bool = False, key=None):
    """Watson-DFT per-coefficient terms of one channel: (amplitude terms d, weighted phase terms),
    each (N, Hb, Wb, 8, 5)."""
    re, im = blocks.block_dft(_stack_pair(y, x))
    amp0, amp1 = _split_pair(jnp.sqrt((re + EPS) ** 2 + (im + EPS) ** 2))
    d = masked_error(p, amp0, amp1, luminance)

    phase0, phase1 = _split_pair(jnp.arctan2(im, re + EPS))
    phase = phase_weights(p["w_phase_tild"], tuning) * jnp.arccos(jnp.cos(phase0 - phase1) * ACOS_SHRINK)
    if tuning:
        amp_key, phase_key = jax.random.split(key)
        d = _dropout(amp_key, d)
        phase = _dropout(phase_key, phase)
    return d, phase


CHANNEL_TERMS = {"dct": _dct_terms, "dft": _dft_terms}


def channel_distance(p: dict, x: jnp.ndarray, y: jnp.ndarray, *, transform: str, **options) -> jnp.ndarray:
    """Watson distance of one channel, x and y of shape (N, H, W) → (N,): the Minkowski pool of the
    per-coefficient terms, plus the phase terms for the DFT."""
    d, phase = CHANNEL_TERMS[transform](p, x, y, **options)
    pooled = _pool(d, p["beta"])
    return pooled if phase is None else pooled + jnp.sum(phase, axis=(1, 2, 3, 4))


def channel_block_map(p: dict, x: jnp.ndarray, y: jnp.ndarray, *, transform: str, **options) -> jnp.ndarray:
    """Each block's share of the channel distance, (N, Hb, Wb), summing to :func:`channel_distance`.

    The pooled term (Σ_b e_b)^(1/β), with e_b = Σ_{u,v} (d + ε) of block b, is shared out in proportion to
    e_b; a block's phase terms are its own.
    """
    d, phase = CHANNEL_TERMS[transform](p, x, y, **options)
    per_block = jnp.sum(d + EPS, axis=(3, 4))
    total = jnp.sum(per_block, axis=(1, 2), keepdims=True)
    shares = per_block / total * total ** (1 / p["beta"])
    return shares if phase is None else shares + jnp.sum(phase, axis=(3, 4))


def _per_channel(fn, params: dict, x: jnp.ndarray, y: jnp.ndarray, key, **options) -> jnp.ndarray:
    """Σ_c softmax(w_tild)_c · fn(channel c) over the YCbCr channels of RGB images, or fn of the one grey
    channel."""
    if x.shape[-1] == 1:
        return fn(params, x[..., 0], y[..., 0], key=key, **options)
    x, y = rgb_to_ycbcr(x), rgb_to_ycbcr(y)
    keys = jax.random.split(key, 3) if key is not None else (None,) * 3
    per_channel = jnp.stack([fn(params[name], x[..., c], y[..., c], key=k, **options)
                             for c, (name, k) in enumerate(zip(YCBCR_CHANNELS, keys))], axis=-1)
    return jnp.sum(per_channel * jax.nn.softmax(params["w_tild"]), axis=-1)


def distance(params: dict, x: jnp.ndarray, y: jnp.ndarray, *, transform: str, luminance: str = "image",
             tuning: bool = False, key=None) -> jnp.ndarray:
    """Watson distance of each image pair, (N,).

    Args:
      params: parameters as returned by :func:`init_params` (or pretrained), cast to x's dtype.
      x, y: input and target (the masking reference), NHWC with 1 (grey) or 3 (RGB) channels, H and W
        multiples of 8, already shifted if a random shift applies.
      transform: 'dct' or 'dft'.
      luminance: 'image' (L̄ per image) or 'batch' (L̄ over the whole batch, as the reference).
      tuning: phase of the real DFT bins active and dropout on (DFT only); needs ``key``.
      key: PRNG key for the dropout.
    """
    return _per_channel(channel_distance, params, x, y, key, transform=transform, luminance=luminance,
                        tuning=tuning)


def distance_map(params: dict, x: jnp.ndarray, y: jnp.ndarray, *, transform: str,
                 luminance: str = "image") -> jnp.ndarray:
    """Where the images differ, (N, H, W): each block's share of the distance (:func:`channel_block_map`,
    channels weighted as in :func:`distance`) spread evenly over its 64 pixels, so that the map sums to the
    distance. Evaluation mode (no tuning)."""
    block_map = _per_channel(channel_block_map, params, x, y, None, transform=transform, luminance=luminance)
    per_pixel = jnp.broadcast_to(block_map[..., None, None] / blocks.BLOCK ** 2,
                                 (*block_map.shape, blocks.BLOCK, blocks.BLOCK))
    return blocks.from_blocks(per_pixel)
