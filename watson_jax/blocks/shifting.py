"""The random shift of the Watson losses: images moved by up to 4 pixels with edge replication.

The shift pads the image by 4 pixels on every side (edge replication) and crops it back at an offset
(sx, sy) in {0..7}², so the 8×8 block grid falls somewhere else each call. It is evaluated as a gather with
clamped indices and differentiated by :func:`shift_tangent`, written with ops whose transposes are cheap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from .layout import BLOCK


def shift(img: jax.Array, offset: ArrayLike) -> jax.Array:
    """Pad by 4 pixels on every side (edge replication) and crop back to H×W at ``offset`` = (sx, sy).

    ``img`` is NHWC; sx moves along H, sy along W, each in {0..7}; (4, 4) is the identity. ``offset`` may be
    traced, so one compiled program serves every offset; values outside {0..7} are clipped into it.
    Equivalently out[:, i, j] = img[:, clip(i + sx − 4), clip(j + sy − 4)], which is how it is evaluated
    (a gather per axis). The Watson losses shift their images inside the block transforms (``shift=`` of
    :func:`block_dcts`, :func:`block_dfts`), which differentiate it themselves.
    """
    return shifted(img, delta_of(offset))


def delta_of(offset: ArrayLike) -> jax.Array:
    """A shift offset (sx, sy), clipped into {0..7}², as the move (δH, δW) = offset − 4 of every pixel."""
    return jnp.clip(jnp.asarray(offset, jnp.int32), 0, BLOCK - 1) - BLOCK // 2


#: The image axes that :func:`shift` moves, in the order of the offset's entries.
SHIFT_AXES = (1, 2)


@jax.custom_jvp
def shifted(img: jax.Array, delta: jax.Array) -> jax.Array:
    """img moved by ``delta`` (δH, δW) with edge replication: a gather with clamped indices per axis. Its
    derivative is :func:`shift_tangent` (this JVP serves :func:`shift`; the joint transforms, which call it
    in their primal only, apply :func:`shift_tangent` in their own)."""
    for axis, d in zip(SHIFT_AXES, delta):
        img = jnp.take(img, jnp.arange(img.shape[axis]) + d, axis=axis, mode="clip")
    return img


def _moved(t: jax.Array, d: jax.Array, axis: int) -> jax.Array:
    """The same map as one axis of :func:`shifted`, t[clip(i + d)] for d in [−4, 3], written with ops whose
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


def shift_tangent(t: jax.Array, delta: jax.Array) -> jax.Array:
    """NHWC tangents moved like :func:`shifted` moves images, by :func:`_moved` along H and W: the form
    to use wherever the map will be transposed."""
    for axis, d in zip(SHIFT_AXES, delta):
        t = _moved(t, d, axis)
    return t


def _shifted_jvp(primals, tangents):
    img, delta = primals
    t = tangents[0]
    if type(t) is not SymbolicZero:  # an image that is not differentiated costs nothing
        t = shift_tangent(t, delta)
    return shifted(img, delta), t


shifted.defjvp(_shifted_jvp, symbolic_zeros=True)


def random_offset(key: jax.Array) -> jax.Array:
    """One shift offset (sx, sy), each uniform in {0..7}, for the whole batch and all channels."""
    return jax.random.randint(key, (2,), 0, BLOCK)
