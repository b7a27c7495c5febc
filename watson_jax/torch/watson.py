"""Watson-DCT and Watson-DFT as torch modules (the maths: :mod:`watson_jax.losses.watson`,
docs/reference.md §4 and §5).

What differs from the JAX side:

- every term is computed directly from its formula, per channel in a Python loop over ``ly``, ``lcb``,
  ``lcr`` (:func:`dct_terms`, :func:`dft_terms`), with torch's autograd for the derivatives: ``torch.abs``
  has derivative 0 at 0, so the gradient is exactly 0 where input and target agree; the DFT phase is
  ``torch.acos(torch.cos(φ0 − φ1) · ACOS_SHRINK)`` with φ from ``torch.atan2`` (the JAX side avoids the
  trigonometric functions and writes the derivatives by hand);
- tuning mode is ``module.train()``; its dropout and random shift draw from the call's ``generator``;
- the distance map (``loss(x, y, spatial=True)``, (N, H, W)) is computed in evaluation mode on the unshifted
  images (:func:`channel_block_map`, :meth:`Watson.distance_map`), with the same definition as the JAX one;
- the modules' state dicts have exactly the keys, order, shapes and dtypes of the reference's weight files
  (``{rgb,gray}_watson_{dct,fft}_trial0.pth``), so those load with ``load_state_dict(..., strict=True)``
  (or :meth:`Watson.load_reference`, which also checks the constants). The constants (ε, the arccos
  shrink, the channel names, the real DFT bins) come from :mod:`watson_jax.constants`.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..constants import ACOS_SHRINK, REAL_BINS, YCBCR_CHANNELS
from ..constants import WATSON_EPS as EPS
from ..losses.watson import init_channel_params, init_params
from ..provider import LossConfig
from .base import Loss
from .blocks import BLOCK, BlockDCT, block_dft
from .color import RGBToYCbCr

_PHASE_MASK = np.ones((BLOCK, BLOCK // 2 + 1), bool)
for _u, _v in REAL_BINS:
    _PHASE_MASK[_u, _v] = False


# -- parameters and state-dict layout ---------------------------------------------------------------


def _register_channel(module: nn.Module, transform: str, params: dict) -> None:
    """Give ``module`` one channel's parameters and constants, in the reference's order:
    buffer ``blocksize`` (int64 8), parameters ``t_tild``, ``alpha``, ``w_tild``, ``beta``
    (+ ``w_phase_tild`` for the DFT), and for the DCT a submodule ``dct`` with buffer ``A``."""
    module.register_buffer("blocksize", torch.tensor(BLOCK, dtype=torch.int64))
    for name in init_channel_params(transform):
        module.register_parameter(name, nn.Parameter(torch.tensor(np.asarray(params[name], np.float32))))
    if transform == "dct":
        module.dct = BlockDCT()


def _save_blocksize_first(self, destination, prefix, keep_vars):
    """``nn.Module._save_to_state_dict`` writes parameters before buffers; the reference files list the
    buffer ``blocksize`` first. Writing it first and letting the default rewrite it in place (an ordered
    dict keeps a key's position) gives the reference's order."""
    if "blocksize" in self._buffers:
        b = self._buffers["blocksize"]
        destination[prefix + "blocksize"] = b if keep_vars else b.detach()
    nn.Module._save_to_state_dict(self, destination, prefix, keep_vars)


def _channel_params(module: nn.Module, transform: str) -> dict:
    return {
        name: getattr(module, name).detach().cpu().numpy().copy() for name in init_channel_params(transform)
    }


class WatsonChannel(nn.Module):
    """The parameters and constants of one YCbCr channel of an RGB Watson loss (``ly``, ``lcb``, ``lcr``)."""

    def __init__(self, transform: str, params: dict):
        super().__init__()
        _register_channel(self, transform, params)

    _save_to_state_dict = _save_blocksize_first


# -- the mathematics of one channel -----------------------------------------------------------------


def smoothmax(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a eᵃ + b eᵇ) / (eᵃ + eᵇ), computed without overflow as a·σ(a − b) + b·σ(b − a)."""
    return a * torch.sigmoid(a - b) + b * torch.sigmoid(b - a)


def _mean_dc(dc: torch.Tensor, luminance: str) -> torch.Tensor:
    """L̄: mean DC of the target, per image ((N, 1, 1)) or over the whole batch (scalar)."""
    if luminance == "image":
        return dc.mean(dim=(1, 2), keepdim=True)
    return dc.mean()


def masked_error(p: nn.Module, ref: torch.Tensor, inp: torch.Tensor, luminance: str) -> torch.Tensor:
    """Per-coefficient errors d = (|(ref − inp)/s| + ε)^β, shape (N, Hb, Wb, 8, U).

    ``p`` holds the channel's parameters; ``ref`` and ``inp`` are the target's and the input's real
    coefficients (DCT values or DFT amplitudes).
    """
    dtype = ref.dtype
    t = torch.exp(p.t_tild.to(dtype))
    alpha, beta = p.alpha.to(dtype), p.beta.to(dtype)
    w = torch.sigmoid(p.w_tild.to(dtype))
    dc = ref[..., 0, 0]
    t_l = t * (((dc + EPS) / (_mean_dc(dc, luminance) + EPS)) ** alpha)[..., None, None]
    s = smoothmax(t_l, (torch.abs(ref) + EPS) ** w * t_l ** (1 - w))
    return (torch.abs((ref - inp) / s) + EPS) ** beta


def _pool(d: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """(Σ_{blocks,u,v} (d + ε))^(1/β) per image."""
    return (d + EPS).sum(dim=(1, 2, 3, 4)) ** (1 / beta.to(d.dtype))


def _dropout(terms: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Each term kept with probability 0.5 and doubled, else 0 (mask drawn from ``generator``)."""
    device = generator.device if generator is not None else terms.device
    keep = torch.rand(terms.shape, generator=generator, device=device) < 0.5
    return torch.where(keep.to(terms.device), 2 * terms, torch.zeros_like(terms))


def phase_weights(w_phase_tild: torch.Tensor, training: bool) -> torch.Tensor:
    """w_φ = exp(w_phase_tild), with the four purely real bins set to 0 unless training."""
    w = torch.exp(w_phase_tild)
    if training:
        return w
    return torch.where(torch.as_tensor(_PHASE_MASK, device=w.device), w, torch.zeros_like(w))


def _pair(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # Target and input go through one transform call, so identical images get identical coefficients.
    return torch.cat([y, x], dim=0)


def dct_terms(
    p: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    luminance: str,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, None]:
    """Watson-DCT per-coefficient terms of one channel, x and y of shape (N, H, W): (d, None), d of shape
    (N, Hb, Wb, 8, 8). Training mode changes nothing."""
    ref, inp = p.dct(_pair(y, x)).chunk(2, dim=0)
    return masked_error(p, ref, inp, luminance), None


def dft_terms(
    p: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    luminance: str,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Watson-DFT per-coefficient terms of one channel, x and y of shape (N, H, W): (amplitude terms d,
    weighted phase terms), each (N, Hb, Wb, 8, 5); in training mode both with dropout, drawn from
    ``generator`` (amplitude mask first)."""
    re, im = block_dft(_pair(y, x))
    amp0, amp1 = torch.sqrt(torch.square(re + EPS) + torch.square(im + EPS)).chunk(2, dim=0)
    d = masked_error(p, amp0, amp1, luminance)

    phase0, phase1 = torch.atan2(im, re + EPS).chunk(2, dim=0)
    w_phase = phase_weights(p.w_phase_tild.to(re.dtype), training)
    phase = w_phase * torch.acos(torch.cos(phase0 - phase1) * ACOS_SHRINK)
    if training:
        d = _dropout(d, generator)
        phase = _dropout(phase, generator)
    return d, phase


CHANNEL_TERMS = {"dct": dct_terms, "dft": dft_terms}


def channel_distance(
    p: nn.Module, x: torch.Tensor, y: torch.Tensor, *, transform: str, **options
) -> torch.Tensor:
    """Watson distance of one channel, x and y of shape (N, H, W) → (N,): the Minkowski pool of the
    per-coefficient terms, plus the phase terms for the DFT. ``options``: ``luminance``, ``training``,
    ``generator`` (see :func:`dft_terms`)."""
    d, phase = CHANNEL_TERMS[transform](p, x, y, **options)
    pooled = _pool(d, p.beta)
    return pooled if phase is None else pooled + phase.sum(dim=(1, 2, 3, 4))


def channel_block_map(
    p: nn.Module, x: torch.Tensor, y: torch.Tensor, *, transform: str, **options
) -> torch.Tensor:
    """Each block's share of the channel distance, (N, Hb, Wb), summing to :func:`channel_distance`.

    The pooled term (Σ_b e_b)^(1/β), with e_b = Σ_{u,v} (d + ε) of block b, is shared out in proportion to
    e_b: e_b / Σe · (Σe)^(1/β); a block's phase terms are its own.
    """
    d, phase = CHANNEL_TERMS[transform](p, x, y, **options)
    per_block = (d + EPS).sum(dim=(3, 4))
    total = per_block.sum(dim=(1, 2), keepdim=True)
    shares = per_block / total * total ** (1 / p.beta.to(d.dtype))
    return shares if phase is None else shares + phase.sum(dim=(3, 4))


# -- the loss ---------------------------------------------------------------------------------------


class Watson(Loss):
    """Watson-DCT or Watson-DFT as a module.

    Layout (the reference's):
      - greyscale: the channel's parameters at top level: buffer ``blocksize``; parameters ``t_tild``,
        ``alpha``, ``w_tild``, ``beta`` (+ ``w_phase_tild`` for the DFT); for the DCT submodule ``dct``
        (buffer ``A``).
      - RGB: parameter ``w_tild`` (3,), submodule ``to_YCbCr`` (buffers ``transform`` = Mᵀ, ``bias``), and
        one :class:`WatsonChannel` per YCbCr channel: ``ly``, ``lcb``, ``lcr``.

    ``params`` is a parameter pytree in watson_jax's layout (``watson_jax.losses.watson.init_params``, or
    pretrained weights); :meth:`jax_params` gives it back.
    """

    def __init__(self, transform: str, config: LossConfig, params: dict | None = None):
        super().__init__(config)
        self.block_transform = transform
        if params is None:
            params = init_params(transform, config.colorspace)
        if config.colorspace == "grey":
            _register_channel(self, transform, params)
        else:
            self.w_tild = nn.Parameter(torch.tensor(np.asarray(params["w_tild"], np.float32)))
            self.to_YCbCr = RGBToYCbCr()
            for name in YCBCR_CHANNELS:
                setattr(self, name, WatsonChannel(transform, params[name]))

    _save_to_state_dict = _save_blocksize_first

    def _per_channel(self, fn, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        """Σ_c softmax(w_tild)_c · fn(channel c) over the YCbCr channels of RGB images, or fn of the one grey
        channel; ``fn`` is :func:`channel_distance` or :func:`channel_block_map`."""
        options = dict(transform=self.block_transform, luminance=self.luminance, **options)
        if self.colorspace == "grey":
            return fn(self, x[:, 0], y[:, 0], **options)
        x, y = self.to_YCbCr(x), self.to_YCbCr(y)
        per_channel = torch.stack(
            [fn(getattr(self, name), x[:, c], y[:, c], **options) for c, name in enumerate(YCBCR_CHANNELS)],
            dim=-1,
        )
        return (per_channel * torch.softmax(self.w_tild.to(x.dtype), dim=0)).sum(dim=-1)

    def distance(self, x, y, *, generator=None):
        return self._per_channel(channel_distance, x, y, training=self.training, generator=generator)

    def distance_map(self, x, y):
        """Each 8×8 block's share of the distance (:func:`channel_block_map`, channels weighted as in
        :meth:`distance`) divided by 64 and spread over the block's pixels, (N, H, W); evaluation mode
        whatever the module's mode (no dropout, no phase of the real DFT bins)."""
        block_map = self._per_channel(channel_block_map, x, y, training=False) / (BLOCK * BLOCK)
        n, hb, wb = block_map.shape
        return (
            block_map[:, :, None, :, None].expand(n, hb, BLOCK, wb, BLOCK).reshape(n, hb * BLOCK, wb * BLOCK)
        )

    def jax_params(self) -> dict:
        """The parameters as a watson_jax pytree of numpy arrays (e.g. for ``Loss.replace`` in JAX)."""
        if self.colorspace == "grey":
            return _channel_params(self, self.block_transform)
        params = {"w_tild": self.w_tild.detach().cpu().numpy().copy()}
        params.update(
            {name: _channel_params(getattr(self, name), self.block_transform) for name in YCBCR_CHANNELS}
        )
        return params

    def load_reference(self, path: str | os.PathLike) -> Watson:
        """Load a reference weight file (``{rgb,gray}_watson_{dct,fft}_trial0.pth``, or one written by
        ``convert_weights.py --to-torch``) with ``load_state_dict(strict=True)``; returns ``self``.

        The file is read with ``torch.load(weights_only=True)`` (no pickled code runs). Its constants
        (``blocksize``, ``dct.A``, ``to_YCbCr.*``) must equal the ones the loss is defined with, and its
        parameters must be finite; otherwise :class:`watson_jax.WeightsError` is raised and nothing is loaded.
        """
        constants = dict(Watson(self.block_transform, self.config).named_buffers())
        return self._load_reference(path, constants=constants)
