"""The 8×8 DCT and DFT: their matrices, the DFT's radix-2 butterflies, and the choice of DFT implementation.

The DCT is one matrix product per block. The DFT is evaluated by radix-2 butterflies (elementwise, fused
by XLA) or ``jnp.fft.rfft2``: both give exact zeros where an FFT does (a block constant along an axis has no
AC terms there), which float64 gradient parity needs; a matrix product leaves ~1e-17 rounding noise that
the phase derivative, ~1/|c|, amplifies. ``experiments/block_dft.py`` measures the implementations; the
default per backend is :data:`DFT_BY_BACKEND`, and ``implementation=`` of the transforms picks another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .layout import BLOCK, COL_AXIS, ROW_AXIS, slices

#: The non-negative horizontal frequencies of a real block.
HALF = BLOCK // 2 + 1
HIGHEST = jax.lax.Precision.HIGHEST


@functools.cache
def dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II matrix A[i, n] = √(2/8) c_i cos((2n+1)iπ/16), c_0 = 1/√2, as float32.

    Computed in float64 and rounded once, which reproduces the reference's float32 matrix bit for bit.
    """
    n = np.arange(BLOCK)
    i = n[:, None]
    c = np.where(i == 0, 1 / np.sqrt(2), 1.0)
    return (np.sqrt(2 / BLOCK) * c * np.cos((2 * n[None, :] + 1) * i * np.pi / (2 * BLOCK))).astype(
        np.float32
    )


def dft_matrices() -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of c[u, v] = Σ_{h,w} X[h, w] e^{-2πi(uh + vw)/8} / 64, (8, 5, 8, 8) float64
    arrays indexed [u, v, h, w]."""
    k = np.arange(BLOCK)
    angle = 2 * np.pi * (np.outer(k, k)[:, None, :, None] + np.outer(k[:HALF], k)[None, :, None, :]) / BLOCK
    return np.cos(angle) / BLOCK**2, -np.sin(angle) / BLOCK**2


@functools.cache
def dct_kernel() -> np.ndarray:
    """K[u, v, h, w] = A[u, h]·A[v, w] of the float32 DCT matrix A (:func:`dct_matrix`), in float64."""
    a = dct_matrix().astype(np.float64)
    return np.einsum("uh,vw->uvhw", a, a)


def per_block(kernel: np.ndarray, blocks: jax.Array) -> jax.Array:
    """Σ_{h,w} kernel[u, v, h, w] · blocks[..., h, w]: one matrix product for all blocks, at full precision
    (no TF32/bf16 passes on GPUs and TPUs)."""
    return jnp.einsum("...hw,uvhw->...uv", blocks, jnp.asarray(kernel, blocks.dtype), precision=HIGHEST)


def block_dct(blocks: jax.Array) -> jax.Array:
    """A X Aᵀ of each 8×8 block, (..., 8, 8) → (..., U, V), as a matrix product. DC = 8 × block mean."""
    return per_block(dct_kernel(), blocks)


def _dft4(a0, a1, a2, a3):
    """4-point DFT of complex samples given as (re, im) pairs, by butterflies."""
    (r0, i0), (r1, i1), (r2, i2), (r3, i3) = a0, a1, a2, a3
    sr02, si02, dr02, di02 = r0 + r2, i0 + i2, r0 - r2, i0 - i2
    sr13, si13, dr13, di13 = r1 + r3, i1 + i3, r1 - r3, i1 - i3
    return [
        (sr02 + sr13, si02 + si13),
        (dr02 + di13, di02 - dr13),
        (sr02 - sr13, si02 - si13),
        (dr02 - di13, di02 + dr13),
    ]


def _dft8(samples: Sequence) -> list:
    """8-point DFT, X_u = Σ_k x_k e^{-2πiuk/8}, of 8 complex samples (re, im) by a radix-2 split.

    Butterflies rather than a matrix product so that samples constant along the axis give exactly zero AC
    coefficients, as an FFT does.
    """
    even = _dft4(*samples[0::2])
    odd = _dft4(*samples[1::2])
    c = float(np.sqrt(0.5))  # a Python float stays weakly typed: no float64 under x64
    twiddled = [
        odd[0],
        (c * (odd[1][0] + odd[1][1]), c * (odd[1][1] - odd[1][0])),  # × e^{-iπ/4}
        (odd[2][1], -odd[2][0]),  # × −i
        (c * (odd[3][1] - odd[3][0]), -c * (odd[3][0] + odd[3][1])),
    ]  # × e^{-3iπ/4}
    low = [(er + tr, ei + ti) for (er, ei), (tr, ti) in zip(even, twiddled)]
    high = [(er - tr, ei - ti) for (er, ei), (tr, ti) in zip(even, twiddled)]
    return low + high


def _dft8_along(re: jax.Array, im: jax.Array, axis: int, keep: int = BLOCK):
    """The first ``keep`` outputs of the 8-point DFT along ``axis`` of the complex array re + i·im."""
    out = _dft8(list(zip(slices(re, axis), slices(im, axis))))[:keep]
    axis %= re.ndim
    return jnp.stack([r for r, _ in out], axis=axis), jnp.stack([i for _, i in out], axis=axis)


def dft_butterflies(blocks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The DFT / 64 of (..., 8, 8) blocks by radix-2 butterflies: (re, im), each (..., 8, 5)."""
    x = blocks / (BLOCK * BLOCK)
    re, im = _dft8_along(x, jnp.zeros_like(x), COL_AXIS, keep=HALF)  # real rows: v = 0..4 suffice
    return _dft8_along(re, im, ROW_AXIS)


def dft_fft(blocks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The DFT / 64 of (..., 8, 8) blocks by ``jnp.fft.rfft2`` (the backend's FFT library): (re, im)."""
    c = jnp.fft.rfft2(blocks / (BLOCK * BLOCK), axes=(ROW_AXIS, COL_AXIS))
    return jnp.real(c), jnp.imag(c)


#: The selectable block-DFT implementations; both keep an FFT's exact zeros and float64 parity.
DFT_IMPLEMENTATIONS: dict[str, Callable[[jax.Array], tuple[jax.Array, jax.Array]]] = {
    "butterflies": dft_butterflies,
    "fft": dft_fft,
}


#: Default implementation per ``jax.default_backend()``, from ``experiments/block_dft.py``
#: (benchmarks/results/).
#: cpu (measured, 2-core Xeon, 2026-11-29): butterflies — the value and gradient of Watson-DFT RGB at batch 32
#:   take 10.9 ms (median; min 10.7) with them and 13.7 (12.8) with the FFT, 69 vs 81 ms at batch 128; the
#:   transform alone, on the 6·32 planes of one call, 4.0 vs 4.6 ms. Both are differentiated through the
#:   DFT matrices, so they differ in the forward transform only.
#: gpu, tpu (not measured yet): butterflies — pure elementwise ops that fuse into the kernels around them,
#:   while an FFT is a separate library call (a cuFFT launch and a complex intermediate in memory; TPUs are
#:   slow at FFTs). Rerun experiments/block_dft.py there to confirm.
DFT_BY_BACKEND: dict[str, str] = {"cpu": "butterflies", "gpu": "butterflies", "tpu": "butterflies"}

#: The default for a backend that :data:`DFT_BY_BACKEND` does not list.
FALLBACK_DFT = "butterflies"


def default_dft_implementation(backend: str | None = None) -> str:
    """The default block-DFT implementation of ``backend`` (None: ``jax.default_backend()``):
    :data:`DFT_BY_BACKEND`, or :data:`FALLBACK_DFT` for a backend it does not list."""
    return DFT_BY_BACKEND.get(jax.default_backend() if backend is None else backend, FALLBACK_DFT)


def dft_implementation(implementation: str | None = None) -> str:
    """The name of the block-DFT implementation that ``implementation=`` selects: the name itself, checked
    against :data:`DFT_IMPLEMENTATIONS`, or for None :func:`default_dft_implementation` of the current
    backend.

    The transforms resolve it when they are traced: a function already compiled keeps the implementation it
    was traced with. Raises ValueError for an unknown name.
    """
    name = default_dft_implementation() if implementation is None else implementation
    if not isinstance(name, str) or name not in DFT_IMPLEMENTATIONS:
        raise ValueError(
            f"unknown block-DFT implementation {name!r}; pass implementation= one of "
            f"{', '.join(repr(k) for k in DFT_IMPLEMENTATIONS)}, or None for the backend's default "
            f"(watson_jax.blocks.DFT_BY_BACKEND)."
        )
    return name
