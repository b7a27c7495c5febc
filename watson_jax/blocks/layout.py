"""Images as 8×8 blocks: NHWC images → (N, B, C, 8, 8) blocks and back, and the planes mixed from them.

B = H/8 · W/8 blocks, row-major, each block contiguous. The transforms work on the two last axes (h
vertical, w horizontal), where XLA's CPU matrix products want the contracted axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ..color import weighted_sum

#: The side of a block.
BLOCK = 8
#: Axes of the in-block row (h, then u) and column (w, then v) of (..., 8, 8) blocks.
ROW_AXIS, COL_AXIS = -2, -1


def pixel_blocks(images: jax.Array) -> jax.Array:
    """(N, H, W, C) → (N, B, C, 8, 8): the 8×8 blocks of each channel, B = H/8 · W/8 blocks row-major.

    ``blocks[n, bh · W/8 + bw, c, i, j] = images[n, 8 bh + i, 8 bw + j, c]``; H and W must be multiples of 8.
    """
    n, h, w, c = images.shape
    blocks = images.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK, c).transpose(0, 1, 3, 5, 2, 4)
    return blocks.reshape(n, (h // BLOCK) * (w // BLOCK), c, BLOCK, BLOCK)


def from_blocks(blocks: jax.Array, height: int, width: int) -> jax.Array:
    """(N, B, 8, 8) pixel values of the blocks of (N, height, width) images → the images.

    The inverse of :func:`pixel_blocks` for one channel.
    """
    n = blocks.shape[0]
    hb, wb = height // BLOCK, width // BLOCK
    return blocks.reshape(n, hb, wb, BLOCK, BLOCK).transpose(0, 1, 3, 2, 4).reshape(n, height, width)


def slices(a: jax.Array, axis: int) -> list[jax.Array]:
    """The entries of ``a`` along ``axis``, each without that axis."""
    axis %= a.ndim
    return [jax.lax.index_in_dim(a, k, axis, keepdims=False) for k in range(a.shape[axis])]


def block_planes(
    images: jax.Array, mix: Sequence[Sequence[float]], offset: Sequence[float] | None = None
) -> jax.Array:
    """The 8×8 blocks of the planes mix·pixel + offset of NHWC images: (N, H, W, C_in) → (N, B, C_out, 8, 8),
    plane k = Σ_c mix[k][c]·channel c (+ offset[k]), as explicit products in the images' dtype (exact float32
    on every backend: no TF32/bf16 passes). ``mix`` is ((1,),) for greyscale, the YCbCr matrix for RGB."""
    channels = slices(pixel_blocks(images), -3)
    planes = [weighted_sum([float(m) for m in row], channels) for row in mix]
    if offset is not None:
        planes = [plane + float(o) for plane, o in zip(planes, offset)]
    return jnp.stack(planes, axis=2)
