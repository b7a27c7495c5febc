"""Watson's perceptual model on 8×8 block transforms: Watson-DCT (docs/reference.md §4) and Watson-DFT
(docs/reference.md §5).

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
The masking is :mod:`.masking`. Watson-DCT takes the change of each coefficient as the DCT of x − y, exactly
0 where the images agree (y and x − y transformed together, :func:`watson_jax.blocks.block_dcts`).
Watson-DFT transforms x and y together (:func:`watson_jax.blocks.block_dfts`), so
their coefficients agree exactly where the images do; its phase term (:mod:`.phase`) uses no trigonometric
function. Both distances per channel carry hand-written derivatives (:mod:`.distances`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import blocks, constants
from ..color import YCBCR_MATRIX, YCBCR_OFFSET
from ..constants import REAL_BINS, TRANSFORMS, YCBCR_CHANNELS
from ..mathops import dropout_scale
from . import distances
from .masking import EPS, amplitude, log_luminance_ratio, masking


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def init_channel_params(transform: str) -> dict:
    """Initial (untuned) parameters of one channel, float32 (docs/reference.md §4–5):
    t_tild = log t, w_tild = logit(w), from :data:`watson_jax.constants.WATSON_DCT_INIT` /
    ``WATSON_DFT_INIT``; the DFT adds w_phase_tild."""
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; expected one of {TRANSFORMS}")
    init = constants.WATSON_DCT_INIT if transform == "dct" else constants.WATSON_DFT_INIT
    params = {
        "t_tild": np.log(init["t"]).astype(np.float32),
        "alpha": np.float32(init["alpha"]),
        "w_tild": np.float32(_logit(init["w"])),
        "beta": np.float32(init["beta"]),
    }
    if transform == "dft":
        params["w_phase_tild"] = np.full(init["t"].shape, constants.WATSON_DFT_PHASE_TILD, np.float32)
    return {k: np.asarray(v, np.float32) for k, v in params.items()}


def init_params(transform: str, colorspace: str) -> dict:
    """Initial parameters: one channel's dict for greyscale, or ``{w_tild, ly, lcb, lcr}`` for RGB."""
    if colorspace == "grey":
        return init_channel_params(transform)
    params = {"w_tild": np.zeros(3, np.float32)}
    params.update({name: init_channel_params(transform) for name in YCBCR_CHANNELS})
    return params


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
    stacked["weight"] = (
        jax.nn.softmax(params["w_tild"]) if "ly" in params else jnp.ones((1,), stacked["alpha"].dtype)
    )
    return stacked


def phase_weights(w_phase_tild: jax.Array, tuning: bool) -> jax.Array:
    """w_φ = exp(w_phase_tild) ((..., U, V) tables), with the four purely real bins set to 0 unless tuning."""
    w = jnp.exp(w_phase_tild)
    if tuning:
        return w
    mask = np.ones((blocks.BLOCK, blocks.HALF), bool)
    for u, v in REAL_BINS:
        mask[u, v] = False
    return jnp.where(mask, w, jnp.zeros_like(w))


def _planes(channels: int) -> tuple:
    """(mix, offset) of :func:`watson_jax.blocks.block_planes` for images of ``channels`` channels: the one
    grey plane, or Y, Cb, Cr."""
    if channels == 1:
        return ((1.0,),), None
    return YCBCR_MATRIX, YCBCR_OFFSET


def _amplitude_params(p: dict) -> dict:
    """The parameters of the masking (:mod:`.masking`), of every channel."""
    return {name: p[name] for name in ("t_tild", "alpha", "w_tild", "beta")}


def _dct_inputs(p: dict, x, y, *, luminance: str, shift=None) -> distances.DctInputs:
    """The inputs of :func:`.distances.dct_distances` for images x, y (both shifted by ``shift`` if
    given). The DCT is linear, so the change of each coefficient is the DCT of x − y, computed directly:
    exactly 0 where the images agree, and accurate where they barely differ."""
    mix, offset = _planes(x.shape[-1])
    target, change = blocks.block_dcts(
        [y, x - y],
        mix,
        offsets=(offset, None),  # no offset in a difference
        shift=shift,
    )
    return distances.DctInputs(
        _amplitude_params(p), target, change, log_luminance_ratio(target[..., 0, 0], luminance)
    )


def _dft_inputs(
    p: dict,
    x,
    y,
    *,
    luminance: str,
    tuning: bool = False,
    key=None,
    shift=None,
    implementation: str | None = None,
) -> distances.DftInputs:
    """The inputs of :func:`.distances.dft_distances` for images x, y (both shifted by ``shift`` if
    given).

    The block DFTs of x and y are evaluated together (:func:`watson_jax.blocks.block_dfts`), so the
    coefficients agree exactly where the images do: x == y gives the reference's value and a gradient of
    exactly 0. The phases come from the coefficients of x and y themselves, as in the reference (the sign
    of a real coefficient near 0 decides its phase).
    """
    mix, offset = _planes(x.shape[-1])
    inp, target = blocks.block_dfts(
        [x, y], mix, offsets=(offset, offset), implementation=implementation, shift=shift
    )
    dc = amplitude(target[0][..., 0, 0], target[1][..., 0, 0])
    shape, dtype = target[0].shape, target[0].dtype
    if tuning:
        amp_key, phase_key = jax.random.split(key)
        amp_scale, phase_scale = dropout_scale(amp_key, shape, dtype), dropout_scale(phase_key, shape, dtype)
    else:
        amp_scale = phase_scale = jnp.ones((), dtype)
    return distances.DftInputs(
        params=_amplitude_params(p),
        w_phase=phase_weights(p["w_phase_tild"], tuning),
        target=target,
        inp=inp,
        log_ratio=log_luminance_ratio(dc, luminance),
        amp_scale=amp_scale,
        phase_scale=phase_scale,
    )


def distance(
    params: dict,
    x: jax.Array,
    y: jax.Array,
    *,
    transform: str,
    luminance: str = "image",
    tuning: bool = False,
    key=None,
    shift=None,
    dft_implementation: str | None = None,
) -> jax.Array:
    """Watson distance of each image pair, (N,): per channel the Minkowski pool of the per-coefficient
    terms (plus the phase terms for the DFT), channels weighted by softmax(w_tild).

    Args:
      params: parameters as returned by :func:`init_params` (or pretrained), cast to x's dtype.
      x, y: input and target (the masking reference), NHWC with 1 (grey) or 3 (RGB) channels, H and W
        multiples of 8.
      transform: 'dct' or 'dft'.
      luminance: 'image' (L̄ per image) or 'batch' (L̄ over the whole batch, as the reference).
      tuning: phase of the real DFT bins active and dropout on (DFT only); needs ``key``.
      key: PRNG key for the dropout.
      shift: the shift offset (sx, sy) of both images (:func:`watson_jax.blocks.shift`), applied while
        cutting them into blocks; None for none.
      dft_implementation: the block DFT's implementation (:func:`watson_jax.blocks.block_dfts`).
    """
    p = channel_params(params)
    if transform == "dft":
        inputs = _dft_inputs(
            p,
            x,
            y,
            luminance=luminance,
            tuning=tuning,
            key=key,
            shift=shift,
            implementation=dft_implementation,
        )
        per_channel = distances.dft_distances(inputs)
    else:
        per_channel = distances.dct_distances(_dct_inputs(p, x, y, luminance=luminance, shift=shift))
    return jnp.sum(per_channel * p["weight"], axis=1)


def distance_map(
    params: dict, x: jax.Array, y: jax.Array, *, transform: str, luminance: str = "image"
) -> jax.Array:
    """Where the images differ, (N, H, W), summing over each image to its distance (evaluation mode).

    Per channel, the pooled term (Σ_b e_b)^(1/β), with e_b = Σ_{u,v} (d + ε) of block b, is shared out
    among the blocks in proportion to e_b; a block's phase terms are its own. The channels are weighted as
    in :func:`distance`, and each block's share is spread evenly over its 64 pixels.
    """
    p = channel_params(params)
    if transform == "dft":
        inputs = _dft_inputs(p, x, y, luminance=luminance)
        terms = distances.dft_terms(inputs.params, inputs.target, inputs.inp, inputs.log_ratio)
        d, phase = terms.mask.d, inputs.w_phase * terms.phase.angle
    else:
        inputs = _dct_inputs(p, x, y, luminance=luminance)
        d, phase = masking(inputs.params, inputs.ref, inputs.change, inputs.log_ratio).d, None
    per_block = jnp.sum(d + EPS, axis=(3, 4))  # (N, B, C)
    total = jnp.sum(per_block, axis=1, keepdims=True)
    shares = per_block / total * total ** (1 / p["beta"][:, 0, 0])
    if phase is not None:
        shares = shares + jnp.sum(phase, axis=(3, 4))
    block_map = jnp.sum(shares * p["weight"], axis=2)  # (N, B)
    per_pixel = jnp.broadcast_to(
        block_map[..., None, None] / blocks.BLOCK**2, (*block_map.shape, blocks.BLOCK, blocks.BLOCK)
    )
    return blocks.from_blocks(per_pixel, x.shape[1], x.shape[2])
