"""Joint block transforms: the block DCT or DFT of the planes of several images in one computation.

The images (shifted first if the loss's random shift applies) are stacked along the batch axis, their
planes mixed (:func:`~watson_jax.blocks.layout.block_planes`), and transformed once; each image's
coefficients are differentiated separately, through the transform's matrices (a custom JVP).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from .kernels import (
    DFT_IMPLEMENTATIONS,
    HALF,
    block_dct,
    dct_kernel,
    dft_implementation,
    dft_matrices,
    per_block,
)
from .layout import BLOCK, block_planes
from .shifting import delta_of, shift_tangent, shifted


def _as_tuples(table) -> tuple | None:
    """A mix matrix or offset vector as nested tuples of floats (hashable), None as None."""
    if table is None:
        return None
    return tuple(_as_tuples(row) if np.ndim(row) else float(row) for row in table)


def _stacked_offsets(images: Sequence[jax.Array], offsets: tuple, channels: int, dtype) -> np.ndarray:
    """The constant offsets of the planes of stacked images, (ΣN, 1, C, 1, 1): each image's offset vector,
    or zeros for None."""
    rows = [
        np.broadcast_to(np.zeros(channels) if o is None else np.asarray(o), (img.shape[0], channels))
        for img, o in zip(images, offsets)
    ]
    return np.concatenate(rows).astype(dtype)[:, None, :, None, None]


def _stacked(images: Sequence[jax.Array], shift, several_planes: bool) -> jax.Array:
    """The images concatenated along the batch axis, each shifted by ``shift`` (:func:`.shifting.shifted`)
    if given.

    Where the shift goes is a measured choice (XLA on CPU, the Watson-DCT step at batch 32): planes mixed
    from several channels read each pixel several times, so each image is shifted before stacking and XLA
    stores the shifted stack once (shifting the stack instead: RGB 5.8 instead of 4.6 ms per step); a
    single plane is cut into blocks straight from one shift of the stack (shifting each image: grey 1.9
    instead of 1.5 ms)."""
    if shift is None:
        return jnp.concatenate(images)
    delta = delta_of(shift)
    if several_planes:
        return jnp.concatenate([shifted(img, delta) for img in images])
    return shifted(jnp.concatenate(images), delta)


@functools.cache
def _joint_transform(transform: str, mix: tuple, offsets: tuple) -> Callable:
    """The custom-JVP function behind :func:`block_dcts` (``transform`` 'dct') and :func:`block_dfts`
    (``transform`` one of :data:`DFT_IMPLEMENTATIONS`): images → for each, a tuple of coefficient arrays."""
    if transform == "dct":
        kernels = (dct_kernel(),)
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
        delta = None if shift is None else delta_of(shift)

        def tangent(t, coefficients):
            if type(t) is SymbolicZero:  # not differentiated: no work in either mode
                return tuple(SymbolicZero(jax.typeof(c).to_tangent_aval()) for c in coefficients)
            if delta is not None:
                t = shift_tangent(t, delta)
            planes = block_planes(t, mix)  # the offsets are constant
            return tuple(per_block(kernel, planes) for kernel in kernels)

        out = transforms(shift, *images)
        return out, tuple(tangent(t, coefficients) for t, coefficients in zip(tangents[1:], out))

    transforms.defjvp(_jvp, symbolic_zeros=True)
    return transforms


def _joint(transform: str, images: Sequence[jax.Array], mix, offsets, shift) -> tuple:
    """The coefficients of :func:`_joint_transform` after checking the offsets and the shift's dtype."""
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
    images: Sequence[jax.Array],
    mix: Sequence[Sequence[float]] = ((1.0,),),
    offsets: Sequence | None = None,
    shift: ArrayLike | None = None,
) -> tuple[jax.Array, ...]:
    """The block DCT (:func:`block_dct`) of the planes of several NHWC batches of one shape: for each,
    ``block_dct(block_planes(images[k], mix, offsets[k]))``, (N, B, C_out, U=8, V=8), of the
    images shifted first if ``shift`` is given.

    ``offsets``: one offset vector (or None) per image, or None for none; ``shift``: the shift offset
    (sx, sy) of all images (:func:`.shifting.shift`), None for none. Evaluated as one stacked batch (one
    plane construction and one matrix product for all), differentiated per image like :func:`block_dfts`.
    """
    return tuple(coefficients for (coefficients,) in _joint("dct", images, mix, offsets, shift))


def block_dfts(
    images: Sequence[jax.Array],
    mix: Sequence[Sequence[float]] = ((1.0,),),
    offsets: Sequence | None = None,
    implementation: str | None = None,
    shift: ArrayLike | None = None,
) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """The block DFT of the planes of several NHWC batches of one shape: for each, ``(re, im)`` of
    :func:`block_dft` applied to ``block_planes(images[k], mix, offsets[k])``, each (N, B, C_out, U=8, V=5),
    of the images shifted first if ``shift`` is given.

    ``offsets``: one offset vector (or None) per image, or None for none; ``shift``: the shift offset (sx, sy)
    of all images (:func:`.shifting.shift`), None for none. ``implementation``: how the DFT is evaluated,
    'butterflies' or 'fft' (:data:`.DFT_IMPLEMENTATIONS`), None for the current backend's default
    (:func:`.default_dft_implementation`); an unknown name raises ValueError. Evaluated as one stacked batch,
    so images that agree go through one fused computation, the same instructions for all of them (bitwise
    equal coefficients on XLA's CPU backend; two separate computations may differ by an ulp where XLA
    contracts products into FMAs). Differentiated per image, as a matrix product with the DFT's matrices (the
    transform is linear and the offsets constant): reverse mode applies their transposes as one matrix
    product, reading each cotangent element once, and an image that is not differentiated costs nothing.
    (JAX's own transpose of the butterflies turns every slice into a zero-padded full-size array, which XLA
    recomputed for each of the eight slices that read it: that was most of the time of a Watson-DFT gradient
    on CPU.) Forward mode and higher derivatives work as usual.
    """
    return _joint(dft_implementation(implementation), images, mix, offsets, shift)


def block_dft(blocks: jax.Array, implementation: str | None = None) -> tuple[jax.Array, jax.Array]:
    """The DFT of each 8×8 block divided by 64, one-sided along v: (..., 8, 8) → (re, im), each
    (..., U=8, V=5).

    c[u, v] = Σ_{h,w} X[h, w] e^{-2πi(uh + vw)/8} / 64 (numpy's rfft2 of the block / 64), by
    ``implementation`` (as for :func:`block_dfts`: 'butterflies', 'fft', or None for the backend's
    default); every choice gives exact zeros where an FFT does. Differentiated through the DFT's matrices
    (:func:`block_dfts`, of which this is the one-image case: the blocks as 8×8 grey images).
    """
    lead = blocks.shape[:-2]
    ((re, im),) = block_dfts([blocks.reshape(-1, BLOCK, BLOCK, 1)], implementation=implementation)
    return re.reshape(*lead, BLOCK, HALF), im.reshape(*lead, BLOCK, HALF)
