"""SSIM as a distance, 1 − mean SSIM (SPEC §2).

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

WINDOW = 11
SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2


def init_params() -> dict:
    """SSIM has no parameters."""
    return {}


@functools.lru_cache(maxsize=None)
def gaussian_window() -> np.ndarray:
    """The reference's 11×11 float32 window: g[i] ∝ exp(−(i−5)²/(2σ²)) rounded to float32, divided by its
    float32 sum, outer product in float32. It sums to 1 − 6.9e-8, and SSIM is sensitive to that sum, so it
    is reproduced exactly and only widened, never renormalised, for float64."""
    g = np.array([math.exp(-(i - WINDOW // 2) ** 2 / (2 * SIGMA ** 2)) for i in range(WINDOW)], np.float32)
    g = g / np.float32(g.astype(np.float64).sum())
    return np.outer(g, g).astype(np.float32)


def _filter(maps: jnp.ndarray) -> jnp.ndarray:
    """Depthwise 'same' convolution of every channel of an NHWC array with the window, zero padding 5."""
    channels = maps.shape[-1]
    kernel = jnp.broadcast_to(jnp.asarray(gaussian_window(), maps.dtype)[:, :, None, None],
                              (WINDOW, WINDOW, 1, channels))
    pad = WINDOW // 2
    return jax.lax.conv_general_dilated(
        maps, kernel, window_strides=(1, 1), padding=((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST)


def ssim_map(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """The SSIM map of two NHWC batches, same shape as the inputs."""
    c = x.shape[-1]
    stats = _filter(jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1))
    mu_x, mu_y, xx, yy, xy = (stats[..., i * c:(i + 1) * c] for i in range(5))
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x * mu_x + mu_y * mu_y + C1) * (var_x + var_y + C2))


def distance(params: dict, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """1 − mean SSIM of each image pair, NHWC → (N,)."""
    del params
    return 1 - jnp.mean(ssim_map(x, y), axis=(1, 2, 3))
