"""Checks on the image arguments of the JAX losses (NHWC arrays), done before any computation.

A thin adapter over :mod:`watson_jax.checks`: it turns JAX and numpy dtypes into the dtype kinds those
checks take and names the NHWC layout. All checks read only shapes and dtypes, so they run at trace time
under ``jax.jit`` and ``jax.vmap`` and a bad argument fails with a message that names the problem and the
fix, never deep inside XLA. Image *values* (the [0, 1] range) cannot be checked under tracing and are the
caller's contract.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import checks
from .constants import BLOCK as BLOCK_SIZE
from .errors import InputError, OptionError

__all__ = [
    "BLOCK_SIZE",
    "check_block_size",
    "check_dtype",
    "check_images",
    "check_key",
    "check_layout",
    "check_min_size",
    "check_shift",
    "compute_dtype",
]

check_min_size = checks.check_min_size


def compute_dtype(*arrays: jax.Array) -> np.dtype:
    """The dtype a loss computes in: float32, or float64 when an input is float64 (x64 enabled)."""
    return jnp.result_type(jnp.float32, *(jax.dtypes.canonicalize_dtype(a.dtype) for a in arrays))


def _as_array(a: Any, arg: str) -> Any:
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        try:
            a = np.asarray(a)
        except Exception as err:  # pragma: no cover - exotic objects
            raise InputError(f"{arg} must be an array of images, got {type(a).__name__}") from err
    return a


def _dtype_kind(dtype: np.dtype) -> str:
    if jnp.issubdtype(dtype, jnp.floating):
        return "floating"
    if dtype == np.bool_:
        return "bool"
    if jnp.issubdtype(dtype, jnp.integer):
        return "integer"
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return "complex"
    return "other"


def check_dtype(a: jax.Array, arg: str) -> None:
    """``a`` has a floating-point dtype (the losses differentiate the images).

    Raises:
      InputTypeError: any other dtype; for integer and bool images the message suggests the cast.
    """
    dtype = np.dtype(a.dtype)
    checks.check_dtype_kind(_dtype_kind(dtype), str(dtype), arg, checks.NHWC)


def check_layout(a: jax.Array, arg: str, channels: tuple[int, ...]) -> None:
    """``a`` is rank 4, channels last (NHWC), with a channel count in ``channels`` and no empty axis.

    Raises:
      InputError: another rank, an NCHW-looking shape, another channel count, or an empty batch.
    """
    checks.check_layout(a.shape, arg, channels, checks.NHWC)


def check_block_size(a: jax.Array, arg: str, loss_name: str) -> None:
    """H and W of the NHWC batch ``a`` are multiples of 8 (the block losses cut images into 8×8 blocks).

    Raises:
      InputError: naming the crop to the largest multiples of 8.
    """
    _, h, w, _ = a.shape
    checks.check_block_size(h, w, arg, loss_name, checks.NHWC)


def check_images(
    x: Any, y: Any, *, channels: tuple[int, ...], loss_name: str, blocks: bool, min_size: int = 1
) -> tuple[Any, Any]:
    """Validate a pair of NHWC image batches and return them as arrays (numpy inputs stay numpy).

    Raises:
      InputTypeError: a non-floating dtype.
      InputError: wrong rank, NCHW layout, wrong channel count, empty batch, mismatched shapes, or
        (``blocks=True``) H or W not a multiple of 8, or H or W below ``min_size``.
    """
    x = _as_array(x, "x")
    y = _as_array(y, "y")
    for a, arg in ((x, "x"), (y, "y")):
        check_dtype(a, arg)
        check_layout(a, arg, channels)
    checks.check_same_shape(x.shape, y.shape, ("x", "y"))
    if blocks:
        check_block_size(x, "x", loss_name)
    check_min_size(*x.shape[1:3], min_size, loss_name)
    return x, y


def check_shift(shift: Any) -> None:
    """An explicit shift offset must be two integers in {0..7}; traced values are checked for shape only
    (and clipped to that range where the shift is applied, as :func:`watson_jax.blocks.shift` does).

    Raises:
      InputError: another shape, a non-integer dtype, or a value outside {0..7}.
    """
    checks.check_shift_values(shift)


def check_key(key: Any) -> None:
    """A PRNG key: a typed key (``jax.random.key``) or a raw uint32[2] key (``jax.random.PRNGKey``).

    Raises:
      OptionError: anything else, e.g. a batch of keys (map the loss with ``jax.vmap`` instead).
    """
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if typed and key.shape == ():
        return
    if not typed and dtype == np.uint32 and tuple(key.shape) == (2,):
        return
    raise OptionError(
        f"key must be one PRNG key, e.g. jax.random.key(0), got {type(key).__name__} with shape "
        f"{getattr(key, 'shape', None)} and dtype {dtype}; for a batch of keys map the loss with jax.vmap."
    )
