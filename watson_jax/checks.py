"""Static checks on image arguments, shared by the JAX losses and the PyTorch modules (numpy and stdlib only).

Every check reads only shapes, dtype kinds and explicit integer offsets, so it runs at trace time under
``jax.jit`` and before any torch computation, and raises the project's errors (:mod:`watson_jax.errors`)
with a message that names the problem and the fix. The two front ends differ only in the memory layout of
an image batch (NHWC for JAX, NCHW for torch) and in how a fix is spelled; a :class:`Layout` carries both.
:mod:`watson_jax.validation` and :mod:`watson_jax.torch.validation` are thin adapters over these functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .constants import BLOCK
from .errors import InputError, InputTypeError

__all__ = [
    "NCHW",
    "NHWC",
    "Layout",
    "check_block_size",
    "check_dtype_kind",
    "check_layout",
    "check_min_size",
    "check_same_shape",
    "check_shift_values",
]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one front end lays out a batch of images and spells the fixes its error messages suggest.

    Templates are ``str.format`` strings with ``{arg}`` (the argument's name) and, for ``crop``, ``{h}`` and
    ``{w}`` (the largest multiples of the block size).
    """

    name: str  # "NHWC"
    channel_axis: int  # axis of the channels in a rank-4 shape
    order: str  # "channels last"
    batch_shape: str  # "(N, H, W, C)"
    single_shape: str  # "(H, W, C)"
    grey_index: str  # "{arg}[None, :, :, None]"
    other: str  # "NCHW (channels first)"
    package: str  # "watson_jax takes NHWC"
    convert: str  # "Transpose it with jnp.transpose({arg}, (0, 2, 3, 1))"
    drop_alpha: str  # "{arg}[..., :3]"
    crop: str  # "{arg}[:, :{h}, :{w}]"
    cast: str  # "{arg}.astype(jnp.float32) / 255"

    def spatial(self, shape: Sequence[int]) -> tuple[int, int]:
        """(H, W) of a rank-4 shape in this layout."""
        return (shape[1], shape[2]) if self.channel_axis == 3 else (shape[2], shape[3])


NHWC = Layout(
    name="NHWC",
    channel_axis=3,
    order="channels last",
    batch_shape="(N, H, W, C)",
    single_shape="(H, W, C)",
    grey_index="{arg}[None, :, :, None]",
    other="NCHW (channels first)",
    package="watson_jax takes NHWC",
    convert="Transpose it with jnp.transpose({arg}, (0, 2, 3, 1))",
    drop_alpha="{arg}[..., :3]",
    crop="{arg}[:, :{h}, :{w}]",
    cast="{arg}.astype(jnp.float32) / 255",
)

NCHW = Layout(
    name="NCHW",
    channel_axis=1,
    order="channels first",
    batch_shape="(N, C, H, W)",
    single_shape="(C, H, W)",
    grey_index="{arg}[None, None]",
    other="NHWC (channels last)",
    package="watson_jax.torch takes NCHW like torch",
    convert="Permute it with {arg}.permute(0, 3, 1, 2)",
    drop_alpha="{arg}[:, :3]",
    crop="{arg}[:, :, :{h}, :{w}]",
    cast="{arg}.float() / 255",
)


def check_dtype_kind(kind: str, dtype_name: str, arg: str, layout: Layout) -> None:
    """Images must be floating point.

    Args:
      kind: ``"floating"``, ``"integer"``, ``"bool"``, ``"complex"`` or ``"other"``.
      dtype_name: the dtype as the caller's framework prints it (for the message).
      arg: the argument's name.
      layout: the front end, for the suggested cast.

    Raises:
      InputTypeError: ``kind`` is not ``"floating"``; integer and bool images get a cast to suggest.
    """
    if kind == "floating":
        return
    hint = f" (e.g. {layout.cast.format(arg=arg)} for 8-bit images)" if kind in ("integer", "bool") else ""
    raise InputTypeError(
        f"{arg} has dtype {dtype_name}; the losses need floating-point images with values in [0, 1]{hint}."
    )


def check_layout(shape: Sequence[int], arg: str, channels: tuple[int, ...], layout: Layout) -> None:
    """Rank 4 in ``layout``, with a channel count in ``channels`` and no empty axis.

    Raises:
      InputError: another rank, the other layout, another channel count, or an empty batch or image.
    """
    shape = tuple(int(s) for s in shape)
    allowed = " or ".join(str(c) for c in channels)
    if len(shape) != 4:
        hint = ""
        if len(shape) == 3:
            hint = f"; for a single image of shape {layout.single_shape} pass {arg}[None]"
        elif len(shape) == 2:
            hint = f"; for a single greyscale image of shape (H, W) pass {layout.grey_index.format(arg=arg)}"
        raise InputError(
            f"{arg} has shape {shape} (rank {len(shape)}); expected a batch of images of shape "
            f"{layout.batch_shape}, {layout.order}{hint}."
        )
    other_axis = 1 if layout.channel_axis == 3 else 3
    if shape[layout.channel_axis] not in channels:
        if shape[other_axis] in channels:
            raise InputError(
                f"{arg} has shape {shape}, which looks like {layout.other}; {layout.package}. "
                f"{layout.convert.format(arg=arg)}."
            )
        count = shape[layout.channel_axis]
        hint = ""
        if count == 4:
            hint = f" Drop the alpha channel with {layout.drop_alpha.format(arg=arg)}."
        elif count == 1:
            hint = " For greyscale images build the loss with colorspace='LA'."
        raise InputError(
            f"{arg} has {count} channels (shape {shape}); this loss expects {allowed} {layout.order} "
            f"({layout.name}).{hint}"
        )
    if min(shape[0], *layout.spatial(shape)) == 0:
        raise InputError(f"{arg} has shape {shape}; it needs at least one image of at least one pixel.")


def check_same_shape(x_shape: Sequence[int], y_shape: Sequence[int], names: tuple[str, str]) -> None:
    """The input and the target have one shape.

    Raises:
      InputError: the shapes differ.
    """
    x_shape, y_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in y_shape)
    if x_shape != y_shape:
        raise InputError(
            f"{names[0]} has shape {x_shape} but {names[1]} has shape {y_shape}; the input and the target "
            "must have the same shape."
        )


def check_block_size(h: int, w: int, arg: str, loss_name: str, layout: Layout) -> None:
    """H and W are multiples of the block size (8), as the block transforms need.

    Raises:
      InputError: naming the crop to the largest multiples of 8.
    """
    if h % BLOCK or w % BLOCK:
        crop = layout.crop.format(arg=arg, h=h // BLOCK * BLOCK, w=w // BLOCK * BLOCK)
        raise InputError(
            f"{loss_name} cuts images into {BLOCK}x{BLOCK} blocks, so H and W must be multiples "
            f"of {BLOCK}; {arg} has H={h}, W={w}. Crop (e.g. {crop}) or pad the images first."
        )


def check_min_size(h: int, w: int, min_size: int, loss_name: str) -> None:
    """H and W are at least ``min_size`` (the Deeploss networks downsample the images several times).

    Raises:
      InputError: an image side is below ``min_size``.
    """
    if min(h, w) < min_size:
        raise InputError(
            f"{loss_name} needs images of at least {min_size}x{min_size} pixels (its network "
            f"downsamples them), got H={h}, W={w}."
        )


def check_shift_values(shift: object) -> None:
    """A shift offset is a pair (sx, sy) of integers in {0, …, 7}.

    ``shift`` is a tuple, list or array of shape (2,). Values that cannot be read yet (a JAX tracer) are
    checked for shape only; where the shift is applied they are clipped to that range.

    Raises:
      InputError: another shape, a non-integer dtype, or a value outside {0, …, 7}.
    """
    message = f"shift must be a pair (sx, sy) of integers in 0..{BLOCK - 1}"
    shape = (len(shift),) if isinstance(shift, (tuple, list)) else tuple(getattr(shift, "shape", ()))
    if shape != (2,):
        raise InputError(f"{message}, got {shift!r}.")
    try:
        values = np.asarray(shift)
    except Exception:  # holds a tracer: its values are not known until run time
        return
    if not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= BLOCK:
        raise InputError(f"{message}, got {values.tolist()}.")
