"""Checks on the torch tensors given to a loss, done before any computation (the torch counterpart of
:mod:`watson_jax.validation`, for NCHW tensors and torch dtypes).

Only shapes, dtypes and devices are read; image *values* (the [0, 1] range) are the caller's contract.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError, InputTypeError
from ..validation import BLOCK_SIZE, check_min_size
from ..validation import check_shift as _check_shift_values


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype a loss computes in: float32 promoted with every tensor's dtype.

    float16/bfloat16 inputs compute in float32; a float64 input, or a module made float64 with
    ``.double()``, computes in float64.
    """
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def check_tensor(a, arg: str) -> None:
    if not isinstance(a, torch.Tensor):
        hint = f" (e.g. torch.from_numpy({arg}))" if isinstance(a, np.ndarray) else ""
        raise InputTypeError(f"{arg} must be a torch.Tensor of images, got {type(a).__name__}{hint}.")


def check_dtype(a: torch.Tensor, arg: str) -> None:
    if not a.is_floating_point():
        hint = ""
        if not a.is_complex():
            hint = f" (e.g. {arg}.float() / 255 for 8-bit images)"
        raise InputTypeError(
            f"{arg} has dtype {a.dtype}; the losses need floating-point images with values in [0, 1]{hint}."
        )


def check_layout(a: torch.Tensor, arg: str, channels: tuple[int, ...]) -> None:
    """Rank 4, channels first (NCHW), with a channel count in ``channels``."""
    shape = tuple(a.shape)
    allowed = " or ".join(str(c) for c in channels)
    if len(shape) != 4:
        hint = ""
        if len(shape) == 3:
            hint = f"; for a single image of shape (C, H, W) pass {arg}[None]"
        elif len(shape) == 2:
            hint = f"; for a single greyscale image of shape (H, W) pass {arg}[None, None]"
        raise InputError(
            f"{arg} has shape {shape} (rank {len(shape)}); expected a batch of images of shape "
            f"(N, C, H, W), channels first{hint}."
        )
    if shape[1] not in channels:
        if shape[-1] in channels:
            raise InputError(
                f"{arg} has shape {shape}, which looks like NHWC (channels last); watson_jax.torch takes NCHW "
                f"like torch. Permute it with {arg}.permute(0, 3, 1, 2)."
            )
        hint = ""
        if shape[1] == 4:
            hint = f" Drop the alpha channel with {arg}[:, :3]."
        elif shape[1] == 1:
            hint = " For greyscale images build the loss with colorspace='LA'."
        raise InputError(
            f"{arg} has {shape[1]} channels (shape {shape}); this loss expects {allowed} channels first "
            f"(NCHW).{hint}"
        )
    if min(shape[0], shape[2], shape[3]) == 0:
        raise InputError(f"{arg} has shape {shape}; it needs at least one image of at least one pixel.")


def check_block_size(a: torch.Tensor, arg: str, loss_name: str) -> None:
    h, w = a.shape[2], a.shape[3]
    if h % BLOCK_SIZE or w % BLOCK_SIZE:
        raise InputError(
            f"{loss_name} cuts images into {BLOCK_SIZE}x{BLOCK_SIZE} blocks, so H and W must be multiples "
            f"of {BLOCK_SIZE}; {arg} has H={h}, W={w}. Crop (e.g. {arg}[:, :, :{h // BLOCK_SIZE * BLOCK_SIZE}, "
            f":{w // BLOCK_SIZE * BLOCK_SIZE}]) or pad the images first."
        )


def check_images(
    x,
    y,
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
    if x.shape != y.shape:
        raise InputError(
            f"input has shape {tuple(x.shape)} but target has shape {tuple(y.shape)}; the input and the target "
            "must have the same shape."
        )
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


def check_shift(shift) -> tuple[int, int]:
    """An explicit shift offset: two integers (sx, sy) in {0..7}, as a tuple, list or integer tensor."""
    if isinstance(shift, torch.Tensor):
        if shift.is_floating_point() or shift.is_complex() or shift.dtype == torch.bool:
            raise InputError(
                f"shift must be a pair (sx, sy) of integers in 0..{BLOCK_SIZE - 1}, "
                f"got a {shift.dtype} tensor."
            )
        shift = shift.detach().cpu().numpy()
    _check_shift_values(shift)
    sx, sy = np.asarray(shift).tolist()
    return int(sx), int(sy)
