"""Checks on the static facts of image arguments, done before any computation.

All checks read only shapes and dtypes, so they run at trace time under ``jax.jit`` and ``jax.vmap`` and a
bad argument fails with a message that names the problem and the fix, never deep inside XLA. Image
*values* (the [0, 1] range) cannot be checked under tracing and are the caller's contract.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .blocks import BLOCK as BLOCK_SIZE
from .errors import InputError, InputTypeError, OptionError


def compute_dtype(*arrays) -> jnp.dtype:
    """The dtype a loss computes in: float32, or float64 when an input is float64 (x64 enabled)."""
    return jnp.result_type(jnp.float32, *(jax.dtypes.canonicalize_dtype(a.dtype) for a in arrays))


def _as_array(a, arg: str):
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        try:
            a = np.asarray(a)
        except Exception as err:  # pragma: no cover - exotic objects
            raise InputError(f"{arg} must be an array of images, got {type(a).__name__}") from err
    return a


def check_dtype(a, arg: str) -> None:
    dtype = np.dtype(a.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        hint = (
            f" (e.g. {arg}.astype(jnp.float32) / 255 for 8-bit images)"
            if jnp.issubdtype(dtype, jnp.integer) or dtype == np.bool_
            else ""
        )
        raise InputTypeError(
            f"{arg} has dtype {dtype}; the losses need floating-point images with values in [0, 1]{hint}."
        )


def check_layout(a, arg: str, channels: tuple[int, ...]) -> None:
    """Rank 4, channels last, with a channel count in ``channels``."""
    shape = tuple(a.shape)
    allowed = " or ".join(str(c) for c in channels)
    if len(shape) != 4:
        hint = ""
        if len(shape) == 3:
            hint = f"; for a single image of shape (H, W, C) pass {arg}[None]"
        elif len(shape) == 2:
            hint = f"; for a single greyscale image of shape (H, W) pass {arg}[None, :, :, None]"
        raise InputError(
            f"{arg} has shape {shape} (rank {len(shape)}); expected a batch of images of shape "
            f"(N, H, W, C), channels last{hint}."
        )
    if shape[-1] not in channels:
        if shape[1] in channels:
            raise InputError(
                f"{arg} has shape {shape}, which looks like NCHW (channels first); watson_jax takes NHWC. "
                f"Transpose it with jnp.transpose({arg}, (0, 2, 3, 1))."
            )
        hint = ""
        if shape[-1] == 4:
            hint = f" Drop the alpha channel with {arg}[..., :3]."
        elif shape[-1] == 1:
            hint = " For greyscale images build the loss with colorspace='LA'."
        raise InputError(
            f"{arg} has {shape[-1]} channels (shape {shape}); this loss expects {allowed} channels last "
            f"(NHWC).{hint}"
        )
    if min(shape[:3]) == 0:
        raise InputError(f"{arg} has shape {shape}; it needs at least one image of at least one pixel.")


def check_block_size(a, arg: str, loss_name: str) -> None:
    _, h, w, _ = a.shape
    if h % BLOCK_SIZE or w % BLOCK_SIZE:
        raise InputError(
            f"{loss_name} cuts images into {BLOCK_SIZE}x{BLOCK_SIZE} blocks, so H and W must be multiples "
            f"of {BLOCK_SIZE}; {arg} has H={h}, W={w}. Crop (e.g. {arg}[:, :{h // BLOCK_SIZE * BLOCK_SIZE}, "
            f":{w // BLOCK_SIZE * BLOCK_SIZE}]) or pad the images first."
        )


def check_images(x, y, *, channels: tuple[int, ...], loss_name: str, blocks: bool, min_size: int = 1):
    """Validate a pair of image batches and return them as arrays.

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
    if tuple(x.shape) != tuple(y.shape):
        raise InputError(
            f"x has shape {tuple(x.shape)} but y has shape {tuple(y.shape)}; the input and the target must "
            "have the same shape."
        )
    if blocks:
        check_block_size(x, "x", loss_name)
    check_min_size(*x.shape[1:3], min_size, loss_name)
    return x, y


def check_min_size(h: int, w: int, min_size: int, loss_name: str) -> None:
    """H and W at least ``min_size`` (the Deeploss networks downsample the images several times)."""
    if min(h, w) < min_size:
        raise InputError(
            f"{loss_name} needs images of at least {min_size}x{min_size} pixels (its network "
            f"downsamples them), got H={h}, W={w}."
        )


def check_shift(shift) -> None:
    """An explicit shift offset must be two integers in {0..7}; traced values are checked for shape only
    (and clipped to that range where the shift is applied, as :func:`watson_jax.blocks.shift` does)."""
    message = f"shift must be a pair (sx, sy) of integers in 0..{BLOCK_SIZE - 1}"
    shape = (len(shift),) if isinstance(shift, (tuple, list)) else tuple(getattr(shift, "shape", ()))
    if shape != (2,):
        raise InputError(f"{message}, got {shift!r}.")
    try:
        values = np.asarray(shift)
    except Exception:  # holds a tracer: its values are not known until run time
        return
    if not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= BLOCK_SIZE:
        raise InputError(f"{message}, got {values.tolist()}.")


def check_key(key) -> None:
    """A PRNG key: a typed key (``jax.random.key``) or a raw uint32[2] key (``jax.random.PRNGKey``)."""
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
