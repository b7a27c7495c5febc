"""8×8 block transforms and the random shift of the Watson losses (SPEC §3, §6).

Layout. NHWC images, shifted if the loss's random shift applies (:func:`shift`), become blocks
(N, B, C, 8, 8) (:func:`pixel_blocks`: B = H/8 · W/8 blocks row-major, each block contiguous), the planes
the loss works on are mixed from the channels blockwise (:func:`block_planes`: grey, or Y, Cb, Cr), and a
transform maps the two last axes to frequencies (u vertical, v horizontal): coefficients (N, B, C, U, V).
The loss's per-channel parameters broadcast along the three last axes, and the matrix products contract
the two last where they lie (XLA's CPU matrix products want the contracted axes last: a frequency-major
layout cost a transposed copy of every cotangent).

The DCT is one matrix product per block. The DFT is evaluated by radix-2 butterflies (elementwise, fused
by XLA) or ``jnp.fft.rfft2``: both give exact zeros where an FFT does (a block constant along an axis has no
AC terms there), which float64 gradient parity needs; a matrix product leaves ~1e-17 rounding noise that
the phase derivative, ~1/|c|, amplifies. Several images are transformed together (:func:`block_dcts`,
:func:`block_dfts`: one plane construction and one transform for all) and differentiated per image through
the transform's matrices. ``experiments/block_dft.py`` measures the DFT implementations; the choice per
backend is :data:`DFT_BY_BACKEND`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .color import weighted_sum

BLOCK = 8
HALF = BLOCK // 2 + 1  # the non-negative horizontal frequencies of a real block
HIGHEST = jax.lax.Precision.HIGHEST
#: Axes of the in-block row (h, then u) and column (w, then v) of (..., 8, 8) blocks.
ROW_AXIS, COL_AXIS = -2, -1


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


def pixel_blocks(images: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W, C) → (N, B, C, 8, 8): the 8×8 blocks of each channel, B = H/8 · W/8 blocks row-major."""
    n, h, w, c = images.shape
    blocks = images.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK, c).transpose(0, 1, 3, 5, 2, 4)
    return blocks.reshape(n, (h // BLOCK) * (w // BLOCK), c, BLOCK, BLOCK)


def from_blocks(blocks: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """(N, B, 8, 8) pixel values of the blocks of (N, height, width) images → the images."""
    n = blocks.shape[0]
    hb, wb = height // BLOCK, width // BLOCK
    return blocks.reshape(n, hb, wb, BLOCK, BLOCK).transpose(0, 1, 3, 2, 4).reshape(n, height, width)


def _slices(a: jnp.ndarray, axis: int) -> list:
    axis %= a.ndim
    return [jax.lax.index_in_dim(a, k, axis, keepdims=False) for k in range(a.shape[axis])]


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


def _dft8_along(re: jnp.ndarray, im: jnp.ndarray, axis: int, keep: int = BLOCK):
    """The first ``keep`` outputs of the 8-point DFT along ``axis`` of the complex array re + i·im."""
    out = _dft8(list(zip(_slices(re, axis), _slices(im, axis))))[:keep]
    axis %= re.ndim
    return jnp.stack([r for r, _ in out], axis=axis), jnp.stack([i for _, i in out], axis=axis)


def _dft_butterflies(blocks: jnp.ndarray):
    """The DFT / 64 of (..., 8, 8) blocks by butterflies: (re, im), each (..., 8, 5)."""
    x = blocks / (BLOCK * BLOCK)
    re, im = _dft8_along(x, jnp.zeros_like(x), COL_AXIS, keep=HALF)  # real rows: v = 0..4 suffice
    return _dft8_along(re, im, ROW_AXIS)


def _dft_fft(blocks: jnp.ndarray):
    """The block DFT / 64 by ``jnp.fft.rfft2`` (the backend's FFT library)."""
    c = jnp.fft.rfft2(blocks / (BLOCK * BLOCK), axes=(ROW_AXIS, COL_AXIS))
    return jnp.real(c), jnp.imag(c)


#: The selectable block-DFT implementations; both keep an FFT's exact zeros and float64 parity.
DFT_IMPLEMENTATIONS = {"butterflies": _dft_butterflies, "fft": _dft_fft}


#: Implementation per ``jax.default_backend()``, from ``experiments/block_dft.py`` (benchmarks/results/).
#: cpu (measured, 2-core Xeon, 2026-11-29): butterflies — the value and gradient of Watson-DFT RGB at batch 32
#:   take 10.9 ms (median; min 10.7) with them and 13.7 (12.8) with the FFT, 69 vs 81 ms at batch 128; the
#:   transform alone, on the 6·32 planes of one call, 4.0 vs 4.6 ms. Both are differentiated through the
#:   DFT matrices, so they differ in the forward transform only.
#: gpu, tpu (not measured yet): butterflies — pure elementwise ops that fuse into the kernels around them,
#:   while an FFT is a separate library call (a cuFFT launch and a complex intermediate in memory; TPUs are
#:   slow at FFTs). Rerun experiments/block_dft.py there to confirm.
DFT_BY_BACKEND = {"cpu": "butterflies", "gpu": "butterflies", "tpu": "butterflies"}

#: Environment variable that overrides the choice: 'butterflies' or 'fft'.
DFT_ENV_VAR = "WATSON_JAX_BLOCK_DFT"

#: Set to 'butterflies' or 'fft' to override both the table and the environment variable (None: not set).
dft_override: str | None = None


def dft_implementation() -> str:
    """The block-DFT implementation in use: :data:`dft_override`, else ``$WATSON_JAX_BLOCK_DFT``, else
    :data:`DFT_BY_BACKEND` for ``jax.default_backend()`` ('butterflies' for unlisted backends).

    Read when a loss is traced: a function already compiled keeps the implementation it was traced with.
    """
    name = (
        dft_override
        or os.environ.get(DFT_ENV_VAR)
        or DFT_BY_BACKEND.get(jax.default_backend(), "butterflies")
    )
    if name not in DFT_IMPLEMENTATIONS:
        raise ValueError(
            f"unknown block-DFT implementation {name!r} (from watson_jax.blocks.dft_override or "
            f"${DFT_ENV_VAR}); choose one of {', '.join(repr(k) for k in DFT_IMPLEMENTATIONS)}."
        )
    return name


def block_planes(
    images: jnp.ndarray, mix: Sequence[Sequence[float]], offset: Sequence[float] | None = None
) -> jnp.ndarray:
    """The 8×8 blocks of the planes mix·pixel + offset of NHWC images: (N, H, W, C_in) → (N, B, C_out, 8, 8),
    plane k = Σ_c mix[k][c]·channel c (+ offset[k]), as explicit products in the images' dtype (exact float32
    on every backend: no TF32/bf16 passes). ``mix`` is ((1,),) for greyscale, the YCbCr matrix for RGB."""
    channels = _slices(pixel_blocks(images), -3)
    planes = [weighted_sum([float(m) for m in row], channels) for row in mix]
    if offset is not None:
        planes = [plane + float(o) for plane, o in zip(planes, offset)]
    return jnp.stack(planes, axis=2)


def _per_block(kernel: np.ndarray, blocks: jnp.ndarray) -> jnp.ndarray:
    """Σ_{h,w} kernel[u, v, h, w] · blocks[..., h, w]: one matrix product for all blocks, at full precision
    (no TF32/bf16 passes on GPUs and TPUs)."""
    return jnp.einsum("...hw,uvhw->...uv", blocks, jnp.asarray(kernel, blocks.dtype), precision=HIGHEST)


@functools.cache
def _dct_kernel() -> np.ndarray:
    """K[u, v, h, w] = A[u, h]·A[v, w] of the float32 DCT matrix A, in float64."""
    a = dct_matrix().astype(np.float64)
    return np.einsum("uh,vw->uvhw", a, a)


def block_dct(blocks: jnp.ndarray) -> jnp.ndarray:
    """A X Aᵀ of each 8×8 block, (..., 8, 8) → (..., U, V), as a matrix product. DC = 8 × block mean."""
    return _per_block(_dct_kernel(), blocks)


def _as_tuples(table) -> tuple | None:
    """A mix matrix or offset vector as nested tuples of floats (hashable), None as None."""
    if table is None:
        return None
    return tuple(_as_tuples(row) if np.ndim(row) else float(row) for row in table)


def _stacked_offsets(images: Sequence[jnp.ndarray], offsets: tuple, channels: int, dtype) -> np.ndarray:
    """The constant offsets of the planes of stacked images, (ΣN, 1, C, 1, 1): each image's offset vector,
    or zeros for None."""
    rows = [
        np.broadcast_to(np.zeros(channels) if o is None else np.asarray(o), (img.shape[0], channels))
        for img, o in zip(images, offsets)
    ]
    return np.concatenate(rows).astype(dtype)[:, None, :, None, None]


def _stacked(images: Sequence[jnp.ndarray], shift, several_planes: bool) -> jnp.ndarray:
    """The images concatenated along the batch axis, each shifted by ``shift`` (:func:`_shifted`) if given.

    Where the shift goes is a measured choice (XLA on CPU, the Watson-DCT step at batch 32): planes mixed
    from several channels read each pixel several times, so each image is shifted before stacking and XLA
    stores the shifted stack once (shifting the stack instead: RGB 5.8 instead of 4.6 ms per step); a
    single plane is cut into blocks straight from one shift of the stack (shifting each image: grey 1.9
    instead of 1.5 ms)."""
    if shift is None:
        return jnp.concatenate(images)
    delta = _delta(shift)
    if several_planes:
        return jnp.concatenate([_shifted(img, delta) for img in images])
    return _shifted(jnp.concatenate(images), delta)


@functools.cache
def _joint_transform(transform: str, mix: tuple, offsets: tuple) -> Callable:
    """The custom-JVP function behind :func:`block_dcts` (``transform`` 'dct') and :func:`block_dfts`
    (``transform`` one of :data:`DFT_IMPLEMENTATIONS`): images → for each, a tuple of coefficient arrays."""
    if transform == "dct":
        kernels = (_dct_kernel(),)
        evaluate = lambda planes: (block_dct(planes),)  # noqa: E731
    else:
        kernels, evaluate = dft_matrices(), DFT_IMPLEMENTATIONS[transform]

    @jax.custom_jvp
    def transforms(shift, *images):
        planes = block_planes(_stacked(images, shift, several_planes=len(mix) > 1), mix)
        if any(o is not None for o in offsets):
            planes = planes + _stacked_offsets(images, offsets, len(mix), planes.dtype)
        parts = evaluate(planes)
        bounds = np.cumsum([0] + [img.shape[0] for img in images])
        return tuple(tuple(part[a:b] for part in parts) for a, b in zip(bounds[:-1], bounds[1:]))

    def _jvp(primals, tangents):
        shift, *images = primals
        delta = None if shift is None else _delta(shift)

        def tangent(t, coefficients):
            if type(t) is SymbolicZero:  # not differentiated: no work in either mode
                return tuple(SymbolicZero(jax.typeof(c).to_tangent_aval()) for c in coefficients)
            if delta is not None:
                t = _shift_tangent(t, delta)
            planes = block_planes(t, mix)  # the offsets are constant
            return tuple(_per_block(kernel, planes) for kernel in kernels)

        out = transforms(shift, *images)
        return out, tuple(tangent(t, coefficients) for t, coefficients in zip(tangents[1:], out))

    transforms.defjvp(_jvp, symbolic_zeros=True)
    return transforms


def _joint(transform: str, images: Sequence[jnp.ndarray], mix, offsets, shift) -> tuple:
    offsets = (None,) * len(images) if offsets is None else tuple(_as_tuples(o) for o in offsets)
    if len(offsets) != len(images):
        raise ValueError(f"got {len(offsets)} offsets for {len(images)} images; give one per image (or None)")
    if shift is not None:
        given, shift = shift, jnp.asarray(shift)
        if not jnp.issubdtype(shift.dtype, jnp.integer):
            raise TypeError(f"shift must be a pair (sx, sy) of integers in 0..{BLOCK - 1}, got {given!r}")
        shift = shift.astype(jnp.int32)
    return _joint_transform(transform, _as_tuples(mix), offsets)(shift, *images)


def block_dcts(
    images: Sequence[jnp.ndarray],
    mix: Sequence[Sequence[float]] = ((1.0,),),
    offsets: Sequence | None = None,
    shift=None,
) -> tuple:
    """The block DCT (:func:`block_dct`) of the planes of several NHWC batches of one shape: for each,
    ``block_dct(block_planes(images[k], mix, offsets[k]))``, (N, B, C_out, U=8, V=8), of the
    images shifted first if ``shift`` is given.

    ``offsets``: one offset vector (or None) per image, or None for none; ``shift``: the shift offset
    (sx, sy) of all images (:func:`shift`), None for none. Evaluated as one stacked batch (one plane
    construction and one matrix product for all), differentiated per image like :func:`block_dfts`.
    """
    return tuple(coefficients for (coefficients,) in _joint("dct", images, mix, offsets, shift))


def block_dfts(
    images: Sequence[jnp.ndarray],
    mix: Sequence[Sequence[float]] = ((1.0,),),
    offsets: Sequence | None = None,
    implementation: str | None = None,
    shift=None,
) -> tuple:
    """The block DFT of the planes of several NHWC batches of one shape: for each, ``(re, im)`` of
    :func:`block_dft` applied to ``block_planes(images[k], mix, offsets[k])``, each (N, B, C_out, U=8, V=5),
    of the images shifted first if ``shift`` is given.

    ``offsets``: one offset vector (or None) per image, or None for none; ``shift``: the shift offset
    (sx, sy) of all images (:func:`shift`), None for none. Evaluated as one stacked batch by
    ``implementation`` (default :func:`dft_implementation`), so images that agree give bitwise equal
    coefficients: one fused computation runs the same instructions for all of them, whatever XLA contracts
    into FMAs (it does on CPU), which two separate computations would not promise. Differentiated per image,
    as a matrix product with the DFT's matrices (the transform is linear and the offsets constant): reverse
    mode applies their transposes as one matrix product, reading each cotangent element once, and an image
    that is not differentiated costs nothing. (JAX's own transpose of the butterflies turns every slice into
    a zero-padded full-size array, which XLA recomputed for each of the eight slices that read it: that was
    most of the time of a Watson-DFT gradient on CPU.) Forward mode and higher derivatives work as usual.
    """
    return _joint(implementation or dft_implementation(), images, mix, offsets, shift)


def block_dft(blocks: jnp.ndarray, implementation: str | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The DFT of each 8×8 block divided by 64, one-sided along v: (..., 8, 8) → (re, im), each (..., U=8, V=5).

    c[u, v] = Σ_{h,w} X[h, w] e^{-2πi(uh + vw)/8} / 64 (numpy's rfft2 of the block / 64), by
    ``implementation`` (default :func:`dft_implementation`); every choice gives exact zeros where an FFT
    does. Differentiated through the DFT's matrices (:func:`block_dfts`, of which this is the one-image
    case: the blocks as 8×8 grey images).
    """
    lead = blocks.shape[:-2]
    ((re, im),) = block_dfts([blocks.reshape(-1, BLOCK, BLOCK, 1)], implementation=implementation)
    return re.reshape(*lead, BLOCK, HALF), im.reshape(*lead, BLOCK, HALF)


def shift(img: jnp.ndarray, offset) -> jnp.ndarray:
    """Pad by 4 pixels on every side (edge replication) and crop back to H×W at ``offset`` = (sx, sy).

    ``img`` is NHWC; sx moves along H, sy along W, each in {0..7}; (4, 4) is the identity. ``offset`` may be
    traced, so one compiled program serves every offset; values outside {0..7} are clipped into it.
    Equivalently out[:, i, j] = img[:, clip(i + sx − 4), clip(j + sy − 4)], which is how it is evaluated
    (a gather per axis). The Watson losses shift their images inside the block transforms (``shift=`` of
    :func:`block_dcts`, :func:`block_dfts`), which differentiate it themselves.
    """
    return _shifted(img, _delta(offset))


def _delta(offset) -> jnp.ndarray:
    """A shift offset (sx, sy), clipped into {0..7}², as the move (δH, δW) = offset − 4 of every pixel."""
    return jnp.clip(jnp.asarray(offset, jnp.int32), 0, BLOCK - 1) - BLOCK // 2


#: The image axes that :func:`shift` moves, in the order of the offset's entries.
SHIFT_AXES = (1, 2)


@jax.custom_jvp
def _shifted(img: jnp.ndarray, delta: jnp.ndarray) -> jnp.ndarray:
    """img moved by ``delta`` (δH, δW) with edge replication: a gather with clamped indices per axis. Its
    derivative is :func:`_shift_tangent` (this JVP serves :func:`shift`; the joint transforms, which call it
    in their primal only, apply :func:`_shift_tangent` in their own)."""
    for axis, d in zip(SHIFT_AXES, delta):
        img = jnp.take(img, jnp.arange(img.shape[axis]) + d, axis=axis, mode="clip")
    return img


def _moved(t: jnp.ndarray, d, axis: int) -> jnp.ndarray:
    """The same map as one axis of :func:`_shifted`, t[clip(i + d)] for d in [−4, 3], written with ops whose
    transposes are cheap: the rows that stay inside (placed into zeros and cropped: transposed, a dynamic
    slice) plus the copies of the first and last row (4-row pads: transposed, sums of 4 rows). JAX would
    transpose the gather into a scatter-add, which XLA's CPU backend runs several times slower."""
    n, pad = t.shape[axis], BLOCK // 2
    room = list(t.shape)
    room[axis] = n + 2 * pad
    placed = jax.lax.dynamic_update_slice_in_dim(jnp.zeros(room, t.dtype), t, pad - d, axis)
    inside = jax.lax.slice_in_dim(placed, pad, pad + n, axis=axis)  # t[i + d], 0 outside
    rows = jnp.arange(pad).reshape([pad if a == axis else 1 for a in range(t.ndim)])
    first = jnp.where(rows + d < 0, jax.lax.slice_in_dim(t, 0, 1, axis=axis), 0)  # rows 0..3
    last = jnp.where(rows + (n - pad) + d > n - 1, jax.lax.slice_in_dim(t, n - 1, n, axis=axis), 0)
    widths = lambda before, after: [(before, after) if a == axis else (0, 0) for a in range(t.ndim)]  # noqa: E731
    return inside + jnp.pad(first, widths(0, n - pad)) + jnp.pad(last, widths(n - pad, 0))


def _shift_tangent(t: jnp.ndarray, delta: jnp.ndarray) -> jnp.ndarray:
    """NHWC tangents moved like :func:`_shifted` moves images, by :func:`_moved` along H and W: the form
    to use wherever the map will be transposed."""
    for axis, d in zip(SHIFT_AXES, delta):
        t = _moved(t, d, axis)
    return t


def _shifted_jvp(primals, tangents):
    img, delta = primals
    t = tangents[0]
    if type(t) is not SymbolicZero:  # an image that is not differentiated costs nothing
        t = _shift_tangent(t, delta)
    return _shifted(img, delta), t


_shifted.defjvp(_shifted_jvp, symbolic_zeros=True)


def random_offset(key) -> jnp.ndarray:
    """One shift offset (sx, sy), each uniform in {0..7}, for the whole batch and all channels."""
    return jax.random.randint(key, (2,), 0, BLOCK)
