"""Deeploss-VGG and Deeploss-Squeeze as torch modules (the maths: :mod:`watson_jax.losses.deeploss`,
docs/reference.md §8).

What differs from the JAX side:

- the backbones are torchvision-layout convolutions (OIHW), held as non-persistent buffers under
  torchvision's names, ``features.<i>[.<part>].weight`` and ``.bias``, converted from watson_jax's HWIO
  parameter pytree; they follow ``.to(device)`` and ``.double()`` but are not in the state dict;
- parameters: the heads, ``lin{k}.model.1.weight`` of shape (1, C_k, 1, 1) — exactly the keys of the
  reference's ``{rgb,gray}_pnet_lin_{vgg,squeeze}_trial0.pth``, which therefore load with
  ``load_state_dict(strict=True)`` (or :meth:`Deeploss.load_reference`). ``lin{k}.model.0`` is the
  reference's dropout slot, an identity here: in ``train()`` mode (the reference's tuning mode) the
  dropout is applied to the heads' inputs by :meth:`Deeploss.layer_maps`, drawn from the call's
  ``generator``;
- the feature norm takes the root only where Σ_c f² > 0, as the JAX side does, so the gradient stays finite
  on dead ReLUs and black or constant images;
- the distance map (``spatial=True``) upsamples each layer's map with ``torch.nn.functional.interpolate``
  (bilinear, ``align_corners=False``), in evaluation mode whatever the module's mode;
- precision: with ``precision='highest'`` (the default) the convolutions — forward and backward — run with
  TF32 switched off for cuDNN, CUDA matrix products and oneDNN (the flags are set around each convolution
  and restored after it; they are process-wide, so another thread's CUDA work running at that moment sees
  them too). ``precision='default'`` leaves torch's settings alone (e.g. TF32 cuDNN convolutions on NVIDIA
  GPUs, torch's default there).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import DEEPLOSS_EPS as EPS
from ..constants import LPIPS_SCALE, LPIPS_SHIFT, SQUEEZE_SLICES, VGG16_CONVS
from ..errors import WeightsError
from ..losses.deeploss import BACKBONES, init_params
from ..provider import LossConfig
from ..weights import check_params
from .base import Loss

# -- architectures (torchvision's ``features`` indices) --------------------------------------------------

#: The torchvision ``features`` indices of each VGG16 slice's 3×3 convolutions.
VGG16_SLICES = tuple(tuple(i for i, _, _ in convs) for convs in VGG16_CONVS)


# -- full-float32 convolutions -----------------------------------------------------------------------------


def _precision_handles() -> list:
    """torch's per-backend ``fp32_precision`` settings that can lower float32 convolutions (torch ≥ 2.9)."""
    handles = []
    for backend, op in (
        ("cudnn", "conv"),
        ("cuda", "matmul"),
        ("mkldnn", "conv"),
        ("mkldnn", "matmul"),
    ):
        handle = getattr(getattr(torch.backends, backend, None), op, None)
        if handle is not None and hasattr(handle, "fp32_precision"):
            handles.append(handle)
    return handles


@contextlib.contextmanager
def full_float32():
    """Inside: no TF32 (nor oneDNN's reduced float32 modes) for convolutions and matrix products; the
    previous settings are restored on exit. Uses torch's ``fp32_precision`` API where it exists (torch ≥ 2.9,
    where reading the legacy ``allow_tf32`` flags can raise after the new API was used), else the legacy
    ``allow_tf32`` flags."""
    handles = _precision_handles()
    if not handles:  # pragma: no cover - torch < 2.9
        saved_flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        try:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved_flags
        return
    saved = [h.fp32_precision for h in handles]
    try:
        for h in handles:
            h.fp32_precision = "ieee"
        yield
    finally:
        for h, value in zip(handles, saved):
            h.fp32_precision = value


class _FullFloat32Conv2d(torch.autograd.Function):
    """``F.conv2d`` whose forward and backward both run inside :func:`full_float32` (the flags are read when
    a kernel runs, so setting them around the forward alone would leave the backward to torch's defaults)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, stride: int, padding: int):
        with full_float32():
            return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, stride, padding = inputs
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        s, p = ctx.stride, ctx.padding
        with full_float32():
            gx, gw, gb = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                [weight.shape[0]] if ctx.has_bias else None,
                [s, s],
                [p, p],
                [1, 1],
                False,
                [0, 0],
                1,
                [need_x, need_weight, need_bias and ctx.has_bias],
            )
        return gx, gw, gb, None, None


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int = 1,
    padding: int = 0,
    precision: str = "highest",
) -> torch.Tensor:
    """2-D convolution of NCHW ``x`` with an OIHW ``weight``; 'highest': full float32 (see the module
    docstring), 'default': plain ``F.conv2d`` under torch's settings."""
    if precision == "highest":
        return _FullFloat32Conv2d.apply(x, weight, bias, stride, padding)
    return F.conv2d(x, weight, bias, stride, padding)


# -- the parts of the module -------------------------------------------------------------------------------


class FrozenConv(nn.Module):
    """One backbone convolution: non-persistent buffers ``weight`` (OIHW) and ``bias``."""

    def __init__(self, kernel_hwio: np.ndarray, bias: np.ndarray):
        super().__init__()
        weight = np.ascontiguousarray(np.transpose(np.asarray(kernel_hwio, np.float32), (3, 2, 0, 1)))
        self.register_buffer("weight", torch.from_numpy(weight), persistent=False)
        self.register_buffer("bias", torch.from_numpy(np.array(bias, np.float32)), persistent=False)

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return f"{i}, {o}, kernel_size=({kh}, {kw}), frozen"


class LinearHead(nn.Module):
    """``lin{k}``: the head of one tap as in the reference, ``model`` = [identity (the reference's dropout
    slot; see :meth:`Deeploss.layer_maps`), 1×1 convolution C → 1 without bias], so its weight is
    ``lin{k}.model.1.weight``, (1, C, 1, 1)."""

    def __init__(self, weights: np.ndarray):
        super().__init__()
        w = np.asarray(weights, np.float32).reshape(-1)
        conv = nn.Conv2d(w.size, 1, kernel_size=1, bias=False)
        conv.weight = nn.Parameter(torch.from_numpy(w.reshape(1, -1, 1, 1).copy()))
        self.model = nn.Sequential(nn.Identity(), conv)

    @property
    def weight(self) -> nn.Parameter:
        return self.model[1].weight


def unit_normalise(f: torch.Tensor) -> torch.Tensor:
    """f / (√(Σ_c f²) + ε) over the channels (dim 1), with a finite gradient where Σ_c f² = 0."""
    squares = (f * f).sum(dim=1, keepdim=True)
    positive = squares > 0
    norm = torch.where(
        positive,
        torch.sqrt(torch.where(positive, squares, torch.ones_like(squares))),
        torch.zeros_like(squares),
    )
    return f / (norm + EPS)


# -- the loss ------------------------------------------------------------------------------------------------


class Deeploss(Loss):
    """Deeploss-VGG or Deeploss-Squeeze (chosen by ``config.name``) as a module.

    Args:
      config: the loss options (``LossConfig``; the provider builds it), including ``precision``.
      params: the heads in watson_jax's layout, ``{'lin0': (C_0,), 'lin1': (C_1,), ...}`` (numpy or
        anything array-like); default the untuned heads of ones
        (:func:`watson_jax.losses.deeploss.init_params`).
      backbone: the ImageNet feature extractor as watson_jax's parameter pytree
        ``{'features.<i>[.<part>]': {'kernel': HWIO, 'bias': (O,)}}`` (what
        ``watson_jax.provider.load_parameters`` returns as ``backbone``); required (WeightsError if its
        layers or shapes do not match the architecture).

    See the module docstring for the state-dict layout and the buffers.
    """

    def __init__(self, config: LossConfig, params: dict | None = None, backbone: dict | None = None):
        super().__init__(config)
        if config.name not in BACKBONES:
            raise ValueError(f"Deeploss is 'Deeploss-VGG' or 'Deeploss-Squeeze', not {config.name!r}.")
        spec = BACKBONES[config.name]
        if backbone is None:
            raise WeightsError(
                f"{config.name} needs its ImageNet {spec.name} backbone (a parameter pytree of "
                f"HWIO kernels, e.g. the 'backbone' of watson_jax.provider.load_parameters)."
            )
        backbone = check_params(backbone, spec.template(), f"the {spec.name} backbone")
        if params is None:
            params = init_params(config.name, config.colorspace)
        heads = check_params(
            {k: np.asarray(v).reshape(-1) for k, v in params.items()},
            init_params(config.name, config.colorspace),
            f"the {config.name} heads",
        )

        self.register_buffer(
            "lpips_shift",
            torch.from_numpy(LPIPS_SHIFT.reshape(1, 3, 1, 1).copy()),
            persistent=False,
        )
        self.register_buffer(
            "lpips_scale",
            torch.from_numpy(LPIPS_SCALE.reshape(1, 3, 1, 1).copy()),
            persistent=False,
        )
        self.features = nn.Module()
        for name, layer in backbone.items():
            parent = self
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(parent, part):
                    parent.add_module(part, nn.Module())
                parent = getattr(parent, part)
            parent.add_module(leaf, FrozenConv(layer["kernel"], layer["bias"]))
        self.num_taps = len(spec.channels)
        for k in range(self.num_taps):
            self.add_module(f"lin{k}", LinearHead(heads[f"lin{k}"]))

    @property
    def precision(self) -> str:
        return self.config.precision

    # -- the computation

    def _conv(self, name: str, x: torch.Tensor, *, stride: int = 1, padding: int = 0) -> torch.Tensor:
        layer = self.get_submodule(name)
        return conv2d(
            x,
            layer.weight.to(x.dtype),
            layer.bias.to(x.dtype),
            stride=stride,
            padding=padding,
            precision=self.precision,
        )

    def _fire(self, name: str, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self._conv(f"{name}.squeeze", x))
        return torch.cat(
            [
                F.relu(self._conv(f"{name}.expand1x1", s)),
                F.relu(self._conv(f"{name}.expand3x3", s, padding=1)),
            ],
            dim=1,
        )

    def taps(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's taps of NCHW images already scaled with the LPIPS constants."""
        taps = []
        if self.name == "Deeploss-VGG":
            for k, convs in enumerate(VGG16_SLICES):
                if k > 0:
                    z = F.max_pool2d(z, 2, 2)
                for i in convs:
                    z = F.relu(self._conv(f"features.{i}", z, padding=1))
                taps.append(z)
            return taps
        z = F.relu(self._conv("features.0", z, stride=2))
        taps.append(z)
        for fires, pool_first in SQUEEZE_SLICES:
            if pool_first:
                z = F.max_pool2d(z, 3, 2, ceil_mode=True)
            for i in fires:
                z = self._fire(f"features.{i}", z)
            taps.append(z)
        return taps

    def layer_maps(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        training: bool | None = None,
    ) -> list[torch.Tensor]:
        """m_l of every tap, (N, 1, h_l, w_l) each, of NCHW images with 1 or 3 channels; in training mode
        (``training``, default the module's mode) with dropout (p = 0.5) on the heads' inputs, drawn from
        ``generator``."""
        if training is None:
            training = self.training
        dtype = x.dtype

        def scaled(z):
            if z.shape[1] == 1:
                z = z.expand(-1, 3, -1, -1)
            return (z - self.lpips_shift.to(dtype)) / self.lpips_scale.to(dtype)

        # One backbone call per image batch (as the reference and the JAX side): when only x needs a
        # gradient, autograd then keeps no activations of y.
        maps = []
        for k, (fx, fy) in enumerate(zip(self.taps(scaled(x)), self.taps(scaled(y)))):
            diff = torch.square(unit_normalise(fx) - unit_normalise(fy))
            if training:
                keep = torch.rand(diff.shape, generator=generator, dtype=diff.dtype, device=diff.device) < 0.5
                diff = torch.where(keep, 2 * diff, torch.zeros_like(diff))
            head = getattr(self, f"lin{k}").weight.to(dtype)
            maps.append(conv2d(diff, head, precision=self.precision))
        return maps

    def distance(self, x, y, *, generator=None):
        return sum(m.mean(dim=(1, 2, 3)) for m in self.layer_maps(x, y, generator))

    def distance_map(self, x, y):
        """Σ_l upsample(m_l) / (H·W), (N, H, W): each layer's map upsampled bilinearly to the input size
        (half-pixel centres, ``align_corners=False``, as LPIPS's spatial mode and ``jax.image.resize``), in
        evaluation mode whatever the module's mode. Its sum over pixels approximates :meth:`distance`
        (exactly for taps at full resolution)."""
        h, w = x.shape[-2:]
        total = 0
        for m in self.layer_maps(x, y, training=False):
            total = total + F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        return total[:, 0] / (h * w)

    # -- parameters and the reference's state-dict layout

    def jax_params(self) -> dict:
        """The heads as a watson_jax pytree of numpy arrays, ``{'lin0': (C_0,), ...}`` (e.g. for
        ``Loss.replace`` in JAX)."""
        return {
            f"lin{k}": getattr(self, f"lin{k}").weight.detach().cpu().numpy().reshape(-1).copy()
            for k in range(self.num_taps)
        }

    def load_reference(self, path: str | os.PathLike) -> Deeploss:
        """Load a reference head file (``{rgb,gray}_pnet_lin_{vgg,squeeze}_trial0.pth``) with
        ``load_state_dict(strict=True)``; returns ``self``. The backbone is not part of those files.

        The file is read with ``torch.load(weights_only=True)`` (no pickled code runs). It must hold exactly
        this module's heads, with its shapes, finite; otherwise :class:`watson_jax.WeightsError` is raised
        and nothing is loaded.
        """
        return self._load_reference(path)
