"""Colour steps on NCHW tensors: RGB → grey (all losses, greyscale colour space) and RGB → YCbCr (the
Watson losses), with the weights and matrix of :mod:`watson_jax.constants` (docs/reference.md §6).
"""

from __future__ import annotations

import torch
from torch import nn

from ..constants import GREY_WEIGHTS, YCBCR_MATRIX, YCBCR_OFFSET


def rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB → (N, 1, H, W) grey = (0.3 R + 0.59 G) + 0.11 B, in that order of evaluation."""
    wr, wg, wb = GREY_WEIGHTS
    return (x[:, 0:1] * wr + x[:, 1:2] * wg) + x[:, 2:3] * wb


class RGBToYCbCr(nn.Module):
    """[Y, Cb, Cr] = M · [R, G, B] + [0, 0.5, 0.5] per pixel, M as in docs/reference.md §6.

    Buffers (the reference's state-dict entries ``to_YCbCr.transform`` and ``to_YCbCr.bias``):
      transform: Mᵀ (3, 3) float32, applied to a pixel as the row vector [R, G, B] times it, so
        output channel c = Σ_i input channel i · transform[i, c].
      bias: [0, 0.5, 0.5] (3,) float32.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("transform", torch.from_numpy(YCBCR_MATRIX.T.copy()))
        self.register_buffer("bias", torch.from_numpy(YCBCR_OFFSET.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) → (N, 3, H, W) in x's dtype.

        Three broadcast products rather than a matrix product, so the result is exact float32 on every
        device whatever the TF32 settings.
        """
        t = self.transform.to(x.dtype).view(3, 1, 3, 1, 1)  # row i, broadcast over the output channel axis
        b = self.bias.to(x.dtype).view(1, 3, 1, 1)
        return x[:, 0:1] * t[0] + x[:, 1:2] * t[1] + x[:, 2:3] * t[2] + b
