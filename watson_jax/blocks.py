"""8×8 block transforms and the random shift of the Watson losses (SPEC §3, §6).

Images here are single-channel batches of shape (N, H, W). A block transform returns coefficients of shape
(N, H/8, W/8, 8, U) — the block grid kept as two axes, axis u vertical and v horizontal inside a block.
The DCT is a pair of matrix products requested at full precision; the DFT is written out as butterflies.
Both fuse well in XLA on every backend (TPUs in particular are slow at small FFT ops).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

BLOCK = 8
HIGHEST = jax.lax.Precision.HIGHEST


@functools.lru_cache(maxsize=None)
def dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II matrix A[i, n] = √(2/8) c_i cos((2n+1)iπ/16), c_0 = 1/√2, as float32.

    Computed in float64 and rounded once, which reproduces the reference's float32 matrix bit for bit.
    """
    n = np.arange(BLOCK)
    i = n[:, None]
    c = np.where(i == 0, 1 / np.sqrt(2), 1.0)
    return (np.sqrt(2 / BLOCK) * c * np.cos((2 * n[None, :] + 1) * i * np.pi / (2 * BLOCK))).astype(np.float32)


def to_blocks(img: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W) → (N, H/8, W/8, 8, 8): the non-overlapping 8×8 blocks, block grid row-major."""
    n, h, w = img.shape
    return img.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)


def from_blocks(blocks: jnp.ndarray) -> jnp.ndarray:
    """Inverse of :func:`to_blocks` for per-pixel maps: (N, Hb, Wb, 8, 8) → (N, 8 Hb, 8 Wb)."""
    n, hb, wb, bh, bw = blocks.shape
    return blocks.transpose(0, 1, 3, 2, 4).reshape(n, hb * bh, wb * bw)


def block_dct(img: jnp.ndarray) -> jnp.ndarray:
    """Per-block orthonormal 2-D DCT-II, A X Aᵀ: (N, H, W) → (N, H/8, W/8, 8, 8). DC = 8 × block mean."""
    a = jnp.asarray(dct_matrix(), img.dtype)
    return jnp.einsum("uh,nabhw,vw->nabuv", a, to_blocks(img), a, precision=HIGHEST)


def _dft4(a0, a1, a2, a3):
    """4-point DFT of complex samples given as (re, im) pairs, by butterflies."""
    (r0, i0), (r1, i1), (r2, i2), (r3, i3) = a0, a1, a2, a3
    sr02, si02, dr02, di02 = r0 + r2, i0 + i2, r0 - r2, i0 - i2
    sr13, si13, dr13, di13 = r1 + r3, i1 + i3, r1 - r3, i1 - i3
    return [(sr02 + sr13, si02 + si13), (dr02 + di13, di02 - dr13),
            (sr02 - sr13, si02 - si13), (dr02 - di13, di02 + dr13)]


def _dft8(samples):
    """8-point DFT, X_u = Σ_k x_k e^{-2πiuk/8}, of 8 complex samples (re, im) by a radix-2 split.

    Written as butterflies rather than a matrix product so that a block that is constant along the
    transformed axis gives exactly zero AC coefficients, as an FFT does. The phase of the Watson-DFT
    depends on those zeros (its derivative scales like 1/|c|); a matrix product leaves rounding noise there.
    """
    even = _dft4(*samples[0::2])
    odd = _dft4(*samples[1::2])
    c = float(np.sqrt(0.5))   # a Python float stays weakly typed: no float64 under x64
    twiddled = [odd[0],
                (c * (odd[1][0] + odd[1][1]), c * (odd[1][1] - odd[1][0])),   # × e^{-iπ/4}
                (odd[2][1], -odd[2][0]),                                        # × −i
                (c * (odd[3][1] - odd[3][0]), -c * (odd[3][0] + odd[3][1]))]   # × e^{-3iπ/4}
    low = [(er + tr, ei + ti) for (er, ei), (tr, ti) in zip(even, twiddled)]
    high = [(er - tr, ei - ti) for (er, ei), (tr, ti) in zip(even, twiddled)]
    return low + high


def block_dft(img: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-block 2-D real DFT divided by 64 (the rfft2 layout): (N, H, W) → (re, im), each (N, H/8, W/8, 8, 5).

    c[u, v] = Σ_{h,w} X[h, w] e^{-2πi(uh + vw)/8} / 64, one-sided along the horizontal axis (v = 0..4).
    """
    x = to_blocks(img) / (BLOCK * BLOCK)
    zero = jnp.zeros_like(x[..., 0])
    # Along w (real input, keep the 5 non-negative frequencies), then along h.
    rows = _dft8([(x[..., k], zero) for k in range(BLOCK)])[:BLOCK // 2 + 1]
    re = jnp.stack([r for r, _ in rows], axis=-1)           # (N, Hb, Wb, 8 (h), 5 (v))
    im = jnp.stack([i for _, i in rows], axis=-1)
    cols = _dft8([(re[..., k, :], im[..., k, :]) for k in range(BLOCK)])
    return jnp.stack([r for r, _ in cols], axis=-2), jnp.stack([i for _, i in cols], axis=-2)


def shift(img: jnp.ndarray, offset) -> jnp.ndarray:
    """Pad by 4 pixels on every side (edge replication) and crop back to H×W at ``offset`` = (sx, sy).

    ``img`` is NHWC; sx moves along H, sy along W, each in {0..7}; (4, 4) is the identity. ``offset`` may be
    traced, so one compiled program serves every offset; values outside {0..7} are clipped into it.
    """
    n, h, w, c = img.shape
    pad = BLOCK // 2
    padded = jnp.pad(img, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offset = jnp.clip(jnp.asarray(offset, jnp.int32), 0, BLOCK - 1)
    zero = jnp.zeros((), jnp.int32)
    return jax.lax.dynamic_slice(padded, (zero, offset[0], offset[1], zero), (n, h, w, c))


def random_offset(key) -> jnp.ndarray:
    """One shift offset (sx, sy), each uniform in {0..7}, for the whole batch and all channels."""
    return jax.random.randint(key, (2,), 0, BLOCK)
