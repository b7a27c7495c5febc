"""Checks on the torch tensors given to a loss (NCHW), done before any computation.

A thin adapter over :mod:`watson_jax.checks`, the checks the JAX side (:mod:`watson_jax.validation`) uses
too: this module adds what only torch has (tensor type, devices, torch dtypes) and names the NCHW layout.
Only shapes, dtypes and devices are read; image *values* (the [0, 1] range) are the caller's contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import checks
from ..constants import BLOCK as BLOCK_SIZE
from ..errors import InputError, InputTypeError

__all__ = [
    "BLOCK_SIZE",
    "check_block_size",
    "check_dtype",
    "check_images",
    "check_layout",
    "check_min_size",
    "check_shift",
    "check_tensor",
    "compute_dtype",
]

check_min_size = checks.check_min_size


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype a loss computes in: float32 promoted with every tensor's dtype.

    float16/bfloat16 inputs compute in float32; a float64 input, or a module made float64 with
    ``.double()``, computes in float64.
    """
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def check_tensor(a: Any, arg: str) -> None:
    """``a`` is a ``torch.Tensor``.

    Raises:
      InputTypeError: anything else; for a numpy array the message suggests ``torch.from_numpy``.
    """
    if not isinstance(a, torch.Tensor):
        hint = f" (e.g. torch.from_numpy({arg}))" if isinstance(a, np.ndarray) else ""
        raise InputTypeError(f"{arg} must be a torch.Tensor of images, got {type(a).__name__}{hint}.")


def _dtype_kind(a: torch.Tensor) -> str:
    if a.is_floating_point():
        return "floating"
    if a.is_complex():
        return "complex"
    return "bool" if a.dtype == torch.bool else "integer"


def check_dtype(a: torch.Tensor, arg: str) -> None:
    """``a`` has a floating-point dtype.

    Raises:
      InputTypeError: any other dtype; for integer and bool tensors the message suggests the cast.
    """
    checks.check_dtype_kind(_dtype_kind(a), str(a.dtype), arg, checks.NCHW)


def check_layout(a: torch.Tensor, arg: str, channels: tuple[int, ...]) -> None:
    """``a`` is rank 4, channels first (NCHW), with a channel count in ``channels`` and no empty axis.

    Raises:
      InputError: another rank, an NHWC-looking shape, another channel count, or an empty batch.
    """
    checks.check_layout(a.shape, arg, channels, checks.NCHW)


def check_block_size(a: torch.Tensor, arg: str, loss_name: str) -> None:
    """H and W of the NCHW batch ``a`` are multiples of 8.

    Raises:
      InputError: naming the crop to the largest multiples of 8.
    """
    checks.check_block_size(a.shape[2], a.shape[3], arg, loss_name, checks.NCHW)


def check_images(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    channels: tuple[int, ...],
    loss_name: str,
    blocks: bool,
    min_size: int = 1,
    device: torch.device | None = None,
) -> None:
    """Validate a pair of NCHW image batches (``input`` x and ``target`` y).

    Raises:
      InputTypeError: not a tensor, or a non-floating dtype.
      InputError: wrong rank, NHWC layout, wrong channel count, empty batch, mismatched shapes or
        devices, or (``blocks=True``) H or W not a multiple of 8, or H or W below ``min_size``.
    """
    for a, arg in ((x, "input"), (y, "target")):
        check_tensor(a, arg)
        check_dtype(a, arg)
        check_layout(a, arg, channels)
    checks.check_same_shape(x.shape, y.shape, ("input", "target"))
    if x.device != y.device:
        raise InputError(f"input is on {x.device} but target is on {y.device}; put both on the same device.")
    if device is not None and x.device != device:
        raise InputError(
            f"the images are on {x.device} but the loss's parameters are on {device}; move the "
            f"loss with loss.to({str(x.device)!r})."
        )
    if blocks:
        check_block_size(x, "input", loss_name)
    check_min_size(*x.shape[2:4], min_size, loss_name)


def check_shift(shift: Any) -> tuple[int, int]:
    """An explicit shift offset: two integers (sx, sy) in {0..7}, as a tuple, list or integer tensor.

    Returns:
      ``(sx, sy)`` as Python ints.

    Raises:
      InputError: a float, complex or bool tensor, another shape, or a value outside {0..7}.
    """
    if isinstance(shift, torch.Tensor):
        if shift.is_floating_point() or shift.is_complex() or shift.dtype == torch.bool:
            raise InputError(
                f"shift must be a pair (sx, sy) of integers in 0..{BLOCK_SIZE - 1}, "
                f"got a {shift.dtype} tensor."
            )
        shift = shift.detach().cpu().numpy()
    checks.check_shift_values(shift)
    sx, sy = np.asarray(shift).tolist()
    return int(sx), int(sy)
