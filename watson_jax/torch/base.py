"""The common forward pass of every torch loss: checks, dtype, greyscale conversion, shift, reduction."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import WeightsError
from ..provider import LossConfig
from . import blocks
from .color import rgb_to_grey
from .validation import check_images, check_shift, compute_dtype


class Loss(nn.Module):
    """A loss as a ``torch.nn.Module``: ``loss(input, target, generator=None, *, shift=None)``.

    ``input`` (x) and ``target`` (y, for Watson the masking reference) are NCHW floating-point tensors with
    values in [0, 1]: 3 channels for 'RGB', 1 or 3 (converted to grey = (0.3 R + 0.59 G) + 0.11 B) for
    greyscale. The result is one distance per image, shape (N,), for reduction 'none', else their sum or
    their mean over images.

    Subclasses implement :meth:`distance` on the checked, converted and shifted images,
    :meth:`elementwise_map` where the loss is a sum of per-element terms, and :meth:`distance_map` where
    the distance map is not those terms summed over channels.

    Dtype: the loss computes in float32 promoted with the dtypes of the inputs and of the module's
    parameters, i.e. float32 for float16/bfloat16/float32 inputs, float64 when an input is float64 or the
    module was made float64 with ``.double()`` (float32 parameters are then widened for the call).
    """

    def __init__(self, config: LossConfig):
        super().__init__()
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def colorspace(self) -> str:
        return self.config.colorspace

    @property
    def reduction(self) -> str:
        return self.config.reduction

    @property
    def deterministic(self) -> bool:
        return self.config.deterministic

    @property
    def luminance(self) -> str:
        return self.config.luminance

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"name={c.name!r}, colorspace={c.colorspace!r}, reduction={c.reduction!r}, "
            f"deterministic={c.deterministic}, luminance={c.luminance!r}, precision={c.precision!r}"
        )

    def _load_reference(self, path, *, constants: dict | None = None, shape_note: str = "") -> Loss:
        """Load a reference ``.pth`` (read with ``torch.load(weights_only=True)``) with
        ``load_state_dict(strict=True)``; returns ``self``. It must have exactly this module's state-dict keys
        and shapes, its ``constants`` (key → tensor) must equal the given ones, and its parameters must be
        finite floats; otherwise WeightsError is raised and nothing is loaded. ``shape_note`` is appended to
        a shape mismatch's message."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises various types for missing, corrupt or unsafe files
            raise WeightsError(
                f"cannot read {path} as a PyTorch state dict ({type(err).__name__}: {err})."
            ) from err
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path} is not a state dict of tensors.")
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise WeightsError(
                f"{path} does not match {self.name} ({self.colorspace}): missing keys {missing}, "
                f"unexpected keys {unexpected}."
            )
        constants = constants or {}
        for key, value in state.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise WeightsError(
                    f"{path}: '{key}' has shape {tuple(value.shape)}, expected "
                    f"{tuple(own[key].shape)}{shape_note}."
                )
            if key in constants:
                if value.dtype != constants[key].dtype or not torch.equal(value, constants[key]):
                    raise WeightsError(
                        f"{path}: '{key}' differs from the constant the loss uses; this is not a "
                        f"{self.name} weight file of the reference implementation."
                    )
            elif not value.is_floating_point() or not torch.isfinite(value).all():
                raise WeightsError(
                    f"{path}: parameter '{key}' is not a finite float tensor (corrupt weights)."
                )
        self.load_state_dict(state, strict=True)
        return self

    def _device(self) -> torch.device | None:
        for t in (*self.parameters(), *self.buffers()):
            return t.device
        return None

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        shift=None,
        elementwise: bool = False,
        spatial: bool = False,
    ) -> torch.Tensor:
        """The distance of ``input`` to ``target``, reduced over images.

        Args:
          input, target: NCHW tensors, values in [0, 1], same shape; H and W multiples of 8 for Watson.
          generator: ``torch.Generator`` for the Watson losses' random shift (``deterministic=False``) and
            for the dropout of Watson-DFT and Deeploss in training mode; None draws from torch's global RNG.
          shift: an explicit offset (sx, sy) in {0..7}² for the Watson losses, used instead of a random
            one ((4, 4) is no shift); sx moves along H, sy along W. Watson losses only (OptionError
            otherwise).
          elementwise: return the per-element terms whose sum over an image is its distance, NCHW, instead
            of the reduction: |x − y| (L1), (x − y)² (L2), the NLL terms (N, 3, H, W) (Adaptive) — the
            reference's reduction='none' output. OptionError for the other losses.
          spatial: return where the images differ, (N, H, W) at input resolution, a map whose sum over an
            image's pixels is its distance (Deeploss: approximately, its layers' maps being upsampled
            bilinearly with half-pixel centres); no reduction, no random shift (the generator is not used),
            and always evaluation mode, also after ``train()`` (no dropout, no phase of the real DFT bins).
            L1, L2, Adaptive: the elementwise terms summed over channels; SSIM: (1 − SSIM map) averaged over
            channels / (H·W); Watson: each 8×8 block's share of the distance spread over its pixels; as
            ``watson_jax.Loss.apply(..., spatial=True)``. OptionError with ``shift=`` or ``elementwise=True``.
        """
        c = self.config
        metric = c.metric
        c.check_call(shift=shift, elementwise=elementwise, spatial=spatial)
        check_images(
            input,
            target,
            channels=c.channels,
            loss_name=metric.name,
            blocks=metric.blocks,
            min_size=metric.min_size,
            device=self._device(),
        )
        if shift is not None:
            shift = check_shift(shift)

        dtype = compute_dtype(input, target, *self.parameters())
        x, y = input.to(dtype), target.to(dtype)
        if c.colorspace == "grey" and x.shape[1] == 3:
            x, y = rgb_to_grey(x), rgb_to_grey(y)
        if spatial:
            return self.distance_map(x, y)
        if metric.random_shift and (shift is not None or not c.deterministic):
            offset = blocks.random_offset(generator) if shift is None else shift
            x, y = blocks.shift(x, offset), blocks.shift(y, offset)

        if elementwise:
            return self.elementwise_map(x, y, generator=generator)
        per_image = self.distance(x, y, generator=generator)
        if c.reduction == "none":
            return per_image
        return per_image.sum() if c.reduction == "sum" else per_image.mean()

    def distance(
        self, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One distance per image, (N,), of NCHW tensors already checked, converted and shifted."""
        raise NotImplementedError

    def elementwise_map(
        self, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The per-element terms whose sum over an image is its distance, NCHW, for the losses that have them
        (the registry's ``Metric.elementwise``); same inputs as :meth:`distance`."""
        raise NotImplementedError

    def distance_map(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Where the images differ, (N, H, W): a map whose sum over an image's pixels is its distance, of NCHW
        tensors already checked and converted (never shifted), in evaluation mode whatever the module's
        mode, drawing no random numbers. This default sums :meth:`elementwise_map` over channels (L1, L2,
        Adaptive); the other losses override it."""
        if self.config.metric.elementwise is None:
            raise NotImplementedError(f"{self.name} defines no distance map")
        return self.elementwise_map(x, y).sum(dim=1)
