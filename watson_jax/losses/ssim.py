"""SSIM as a distance, 1 − mean SSIM (docs/reference.md §2).

With w an 11×11 Gaussian window (σ = 1.5) applied per channel with zero padding of 5 ("same" size):
  μx = w∗x, μy = w∗y, σx² = w∗x² − μx², σy² = w∗y² − μy², σxy = w∗(xy) − μxμy,
  SSIM map = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),  C1 = 0.01², C2 = 0.03²,
and the distance of an image is 1 − the mean of its map over H, W and channels. The zero padding makes the
numbers differ from dm_pix / tf.image.ssim, which filter without padding.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..constants import SSIM_C1 as C1
from ..constants import SSIM_C2 as C2
from ..constants import SSIM_SIGMA as SIGMA
from ..constants import SSIM_WINDOW as WINDOW


def init_params() -> dict:
    """SSIM has no parameters."""
    return {}


@functools.cache
def gaussian_window() -> np.ndarray:
    """The reference's 11×11 float32 window: g[i] ∝ exp(−(i−5)²/(2σ²)) rounded to float32, divided by its
    float32 sum, outer product in float32. It sums to 1 − 6.9e-8, and SSIM is sensitive to that sum, so it
    is reproduced exactly and only widened, never renormalised, for float64."""
    g = _gaussian_taps()
    return np.outer(g, g).astype(np.float32)


@functools.cache
def _gaussian_taps() -> np.ndarray:
    """The float32 1-D window g (normalised by its float32 sum); the 2-D window is fl(g gᵀ)."""
    g = np.array([math.exp(-((i - WINDOW // 2) ** 2) / (2 * SIGMA**2)) for i in range(WINDOW)], np.float32)
    return g / np.float32(g.astype(np.float64).sum())


@functools.cache
def _banded(n: int) -> np.ndarray:
    """(n, n) matrix B with B[i, k] = g[k − i + 5]: zero-padded 'same' filtering of a length-n axis."""
    offsets = np.arange(n)[None, :] - np.arange(n)[:, None] + WINDOW // 2
    inside = (offsets >= 0) & (offsets < WINDOW)
    return np.where(inside, _gaussian_taps()[np.clip(offsets, 0, WINDOW - 1)], 0).astype(np.float32)


def _filter_2d(maps: jax.Array) -> jax.Array:
    """Depthwise 'same' convolution with the 2-D float32 window, zero padding 5 (exact reference window)."""
    channels = maps.shape[-1]
    kernel = jnp.broadcast_to(
        jnp.asarray(gaussian_window(), maps.dtype)[:, :, None, None], (WINDOW, WINDOW, 1, channels)
    )
    pad = WINDOW // 2
    return jax.lax.conv_general_dilated(
        maps,
        kernel,
        window_strides=(1, 1),
        padding=((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST,
    )


def _filter_separable(maps: jax.Array) -> jax.Array:
    """The same filter as two banded matrix products (g along H, then along W)."""
    _, h, w, _ = maps.shape
    bh, bw = jnp.asarray(_banded(h), maps.dtype), jnp.asarray(_banded(w), maps.dtype)
    return jnp.einsum("hk,nkwc,vw->nhvc", bh, maps, bw, precision=jax.lax.Precision.HIGHEST)


def _filter(maps: jax.Array) -> jax.Array:
    """Filter every channel of an NHWC array with the window ('same' size, zero padding 5).

    The separable form is 15–100× faster than a depthwise 2-D convolution on CPU. It differs from the
    reference's window only by the float32 rounding of the outer product fl(g_i g_j) (≤ 6e-8 relative),
    which is float32 noise; SSIM amplifies it to ~5e-7 relative, visible in float64 only, so float64 uses
    the 2-D window itself and reproduces the reference's numbers exactly.
    """
    return _filter_2d(maps) if maps.dtype == jnp.float64 else _filter_separable(maps)


def ssim_map(x: jax.Array, y: jax.Array) -> jax.Array:
    """The SSIM map of two NHWC batches, same shape as the inputs."""
    c = x.shape[-1]
    stats = _filter(jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1))
    mu_x, mu_y, xx, yy, xy = (stats[..., i * c : (i + 1) * c] for i in range(5))
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
        (mu_x * mu_x + mu_y * mu_y + C1) * (var_x + var_y + C2)
    )


def distance(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """1 − mean SSIM of each image pair, NHWC → (N,)."""
    del params
    return 1 - jnp.mean(ssim_map(x, y), axis=(1, 2, 3))


def distance_map(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """(1 − SSIM map) averaged over channels and divided by H·W, (N, H, W): sums to :func:`distance`."""
    del params
    _, h, w, _ = x.shape
    return jnp.mean(1 - ssim_map(x, y), axis=-1) / (h * w)
