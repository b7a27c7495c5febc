"""8×8 block transforms and the random shift of the Watson losses (SPEC §3, §6).

Images here are single-channel batches of shape (N, H, W). A block transform returns coefficients of shape
(N, H/8, W/8, 8, U) — the block grid kept as two axes, axis u vertical and v horizontal inside a block.
The DCT is a pair of matrix products requested at full precision. The DFT has two implementations that
both give exact zeros where an FFT does (a block constant along an axis has no AC terms there), which
float64 gradient parity needs: radix-2 butterflies written out as elementwise adds, which XLA fuses into
the loss, and ``jnp.fft.rfft2`` of the blocks. A matrix-product DFT is not offered: it leaves ~1e-17
rounding noise in those zeros, and the phase derivative (~1/|c|) amplifies it (float64 gradients moved by
2.5e-4 against the golden files). ``experiments/block_dft.py`` measures all three; the choice per backend
is :data:`DFT_BY_BACKEND`.
"""

from __future__ import annotations

import functools
import os
from typing import Optional

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


def block_dft_butterflies(img: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """:func:`block_dft` by radix-2 butterflies: elementwise adds and multiplies only, fused by XLA."""
    x = to_blocks(img) / (BLOCK * BLOCK)
    zero = jnp.zeros_like(x[..., 0])
    # Along w (real input, keep the 5 non-negative frequencies), then along h.
    rows = _dft8([(x[..., k], zero) for k in range(BLOCK)])[:BLOCK // 2 + 1]
    re = jnp.stack([r for r, _ in rows], axis=-1)           # (N, Hb, Wb, 8 (h), 5 (v))
    im = jnp.stack([i for _, i in rows], axis=-1)
    cols = _dft8([(re[..., k, :], im[..., k, :]) for k in range(BLOCK)])
    return jnp.stack([r for r, _ in cols], axis=-2), jnp.stack([i for _, i in cols], axis=-2)


def block_dft_fft(img: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """:func:`block_dft` by ``jnp.fft.rfft2`` of the blocks (the backend's FFT library)."""
    c = jnp.fft.rfft2(to_blocks(img) / (BLOCK * BLOCK))
    return jnp.real(c), jnp.imag(c)


#: The selectable block-DFT implementations; both keep an FFT's exact zeros and float64 parity.
DFT_IMPLEMENTATIONS = {"butterflies": block_dft_butterflies, "fft": block_dft_fft}

#: Implementation per ``jax.default_backend()``, from ``experiments/block_dft.py`` (benchmarks/results/).
#: cpu (measured, 2-core Xeon, idle machine): butterflies — a tie: the transform alone takes the same time
#:   both ways (4.5 ms at batch 32 RGB), and the value and gradient of Watson-DFT RGB 5% less with the
#:   butterflies (53 vs 55–57 ms at batch 32, 213–242 vs 231–255 ms at 128); the transcendental functions of
#:   the loss, not the transform, take most of the time.
#: gpu, tpu (not measured yet): butterflies — pure elementwise ops that fuse into the kernels of the
#:   masking and pooling around them, while an FFT is a separate library call (a cuFFT launch and a complex
#:   intermediate in memory; TPUs are slow at FFTs). Rerun experiments/block_dft.py there to confirm.
DFT_BY_BACKEND = {"cpu": "butterflies", "gpu": "butterflies", "tpu": "butterflies"}

#: Environment variable that overrides the choice: 'butterflies' or 'fft'.
DFT_ENV_VAR = "WATSON_JAX_BLOCK_DFT"

#: Set to 'butterflies' or 'fft' to override both the table and the environment variable (None: not set).
dft_override: Optional[str] = None


def dft_implementation() -> str:
    """The block-DFT implementation in use: :data:`dft_override`, else ``$WATSON_JAX_BLOCK_DFT``, else
    :data:`DFT_BY_BACKEND` for ``jax.default_backend()`` ('butterflies' for unlisted backends).

    Read when a loss is traced: a function already compiled keeps the implementation it was traced with.
    """
    name = dft_override or os.environ.get(DFT_ENV_VAR) or DFT_BY_BACKEND.get(jax.default_backend(), "butterflies")
    if name not in DFT_IMPLEMENTATIONS:
        raise ValueError(f"unknown block-DFT implementation {name!r} (from watson_jax.blocks.dft_override or "
                         f"${DFT_ENV_VAR}); choose one of {', '.join(repr(k) for k in DFT_IMPLEMENTATIONS)}.")
    return name


def block_dft(img: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-block 2-D real DFT divided by 64 (the rfft2 layout): (N, H, W) → (re, im), each (N, H/8, W/8, 8, 5).

    c[u, v] = Σ_{h,w} X[h, w] e^{-2πi(uh + vw)/8} / 64, one-sided along the horizontal axis (v = 0..4).
    Computed by :func:`dft_implementation`'s choice; every choice gives exact zeros where an FFT does.
    """
    return DFT_IMPLEMENTATIONS[dft_implementation()](img)


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
