"""SSIM as a distance, 1 − mean SSIM, as a torch module (the maths: :mod:`watson_jax.losses.ssim`,
docs/reference.md §2).

What differs from the JAX side: the window is applied as the reference applies it, one depthwise 2-D
convolution with the 11×11 float32 window (zero padding 5), where the JAX side uses a separable filter;
the window's construction and the constants come from :mod:`watson_jax.constants`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..constants import SSIM_C1 as C1
from ..constants import SSIM_C2 as C2
from ..constants import SSIM_SIGMA as SIGMA
from ..constants import SSIM_WINDOW as WINDOW
from .base import Loss


def gaussian_window() -> np.ndarray:
    """The 11×11 float32 window of the reference.

    g[i] = exp(−(i − 5)²/(2σ²)) rounded to float32; g is divided by its sum (accumulated in float64, then
    rounded to float32) in float32; the window is the float32 outer product g gᵀ. It sums to 1 − 6.9e-8;
    SSIM is sensitive to that sum, so float64 computations widen this window and never renormalise it.
    """
    g = np.array([math.exp(-((i - WINDOW // 2) ** 2) / (2 * SIGMA**2)) for i in range(WINDOW)], np.float32)
    g = g / np.float32(g.astype(np.float64).sum())
    return np.outer(g, g).astype(np.float32)


class SSIM(Loss):
    """1 − mean SSIM of each image pair, (N,). Non-persistent buffer ``window``: the float32 11×11 window."""

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("window", torch.from_numpy(gaussian_window()), persistent=False)

    def filter(self, maps: torch.Tensor) -> torch.Tensor:
        """Depthwise 'same' convolution of every channel of an NCHW tensor with the window, zero padding 5."""
        channels = maps.shape[1]
        kernel = self.window.to(maps.dtype).expand(channels, 1, WINDOW, WINDOW)
        return torch.nn.functional.conv2d(maps, kernel, padding=WINDOW // 2, groups=channels)

    def ssim_map(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The SSIM map of two NCHW batches, same shape as the inputs."""
        stats = self.filter(torch.cat([x, y, x * x, y * y, x * y], dim=1))
        mu_x, mu_y, xx, yy, xy = stats.chunk(5, dim=1)
        var_x = xx - mu_x * mu_x
        var_y = yy - mu_y * mu_y
        cov = xy - mu_x * mu_y
        return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
            (mu_x * mu_x + mu_y * mu_y + C1) * (var_x + var_y + C2)
        )

    def distance(self, x, y, *, generator=None):
        return 1 - self.ssim_map(x, y).mean(dim=(1, 2, 3))

    def distance_map(self, x, y):
        """(1 − SSIM map) averaged over channels and divided by H·W, (N, H, W): sums to :meth:`distance`."""
        h, w = x.shape[-2:]
        return (1 - self.ssim_map(x, y)).mean(dim=1) / (h * w)
