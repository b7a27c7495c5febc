"""8×8 block transforms and the random shift of the Watson losses on torch tensors (the maths:
:mod:`watson_jax.blocks`, docs/reference.md §3).

What differs from the JAX side: single-channel images have shape (N, H, W) and a block transform returns
coefficients of shape (N, H/8, W/8, 8, U), the block grid kept as two axes (row-major), axis u vertical and
v horizontal inside a block; the DCT is the matrix product A X Aᵀ and the DFT is ``torch.fft.rfft2``, as
in the reference, without the JAX side's joint transforms and custom derivatives.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..constants import BLOCK


def dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II matrix A[i, n] = √(2/8) · c_i · cos((2n+1) i π / 16), c_0 = 1/√2, c_i = 1.

    Evaluated in float64 and rounded once to float32 (the reference's matrix, bit for bit).
    """
    a = np.empty((BLOCK, BLOCK))
    for i in range(BLOCK):
        c = 1 / math.sqrt(2) if i == 0 else 1.0
        for n in range(BLOCK):
            a[i, n] = math.sqrt(2 / BLOCK) * c * math.cos((2 * n + 1) * i * math.pi / (2 * BLOCK))
    return a.astype(np.float32)


def to_blocks(img: torch.Tensor) -> torch.Tensor:
    """(N, H, W) → (N, H/8, W/8, 8, 8): the non-overlapping 8×8 blocks, block grid row-major."""
    n, h, w = img.shape
    return img.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).permute(0, 1, 3, 2, 4)


class BlockDCT(nn.Module):
    """Per-block orthonormal 2-D DCT-II, c = A X Aᵀ: (N, H, W) → (N, H/8, W/8, 8, 8).

    The DC coefficient c[0, 0] is 8 × the block mean. Buffer ``A`` (8, 8) float32 is the reference's
    state-dict entry ``dct.A``. The products are matrix multiplications: on CUDA they are full float32 as
    long as TF32 matmuls stay disabled (PyTorch's default, ``torch.backends.cuda.matmul.allow_tf32 = False``).
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("A", torch.from_numpy(dct_matrix()))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        a = self.A.to(img.dtype)
        return a @ to_blocks(img) @ a.T


def block_dft(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block 2-D real DFT divided by 64: (N, H, W) → (Re c, Im c), each (N, H/8, W/8, 8, 5).

    c[u, v] = Σ_{h,w} X[h, w] e^{−2πi(uh + vw)/8} / 64, one-sided along the horizontal axis (v = 0..4),
    i.e. ``torch.fft.rfft2`` of each block divided by 64.
    """
    c = torch.fft.rfft2(to_blocks(img)) / (BLOCK * BLOCK)
    return c.real, c.imag


def shift(img: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    """Pad by 4 pixels on every side (edge replication) and crop back to H×W at ``offset`` = (sx, sy).

    ``img`` is NCHW; sx moves along H, sy along W, each in {0..7}; (4, 4) is the identity.
    """
    _, _, h, w = img.shape
    pad = BLOCK // 2
    sx, sy = offset
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad), mode="replicate")
    return padded[:, :, sx : sx + h, sy : sy + w]


def random_offset(generator: torch.Generator | None = None) -> tuple[int, int]:
    """One shift offset (sx, sy), each uniform in {0..7}, for the whole batch and all channels.

    Drawn with ``torch.randint`` from ``generator`` (on the generator's device), or from torch's global
    RNG when ``generator`` is None.
    """
    device = generator.device if generator is not None else None
    sx, sy = torch.randint(0, BLOCK, (2,), generator=generator, device=device).tolist()
    return sx, sy
