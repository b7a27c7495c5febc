"""Adaptive (Barron's robust loss on a YUV/DCT representation) as a torch module (the maths:
:mod:`watson_jax.losses.adaptive`, docs/reference.md §7).

What differs from the JAX side: the difference d = x − y is taken in NCHW memory order, which is the order
the reference's colour step reads (rows of 3 consecutive values, neighbouring pixels of one channel), so no
transpose is needed here; log Z(α) is the same cubic Hermite spline over :mod:`watson_jax.partition`,
evaluated with torch operations; ``loss(x, y, elementwise=True)`` returns the NLL terms (N, 3, H, W), the
reference's reduction='none' output, and ``spatial=True`` those terms summed over channels, (N, H, W).

State dict: exactly the reference file's ``{rgb,gray}_adaptive_trial0.pth`` — two entries,
``.robust_loss.adaptive_lossfun.latent_alpha`` and ``.robust_loss.adaptive_lossfun.latent_scale``, each
(1, 3·H·W) float32, with the leading dot of the reference's key names (the reference nests the parameters
under a submodule registered with an empty name, which torch no longer allows). The module holds them as
plain parameters ``latent_alpha`` and ``latent_scale`` and renames the keys on saving and loading (see
:meth:`Adaptive._save_to_state_dict`), so the reference files load with ``load_state_dict(strict=True)``.
The constants (the YUV matrix, the DCT matrices, the spline table) are non-persistent buffers: they follow
``.to(device)`` but are not part of the state dict.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import partition
from ..constants import ADAPTIVE_EPS as EPS
from ..constants import ALPHA_HI, ALPHA_LO, SCALE_LO, YUV_MATRIX, YUV_SCALE
from ..errors import InputError
from ..losses.adaptive import init_params, normalise_image_size
from ..provider import LossConfig
from .base import Loss

#: The reference's key prefix of the two parameters in its state dict (leading dot included).
REFERENCE_PREFIX = ".robust_loss.adaptive_lossfun."
PARAMETER_NAMES = ("latent_alpha", "latent_scale")


# -- the mathematics --------------------------------------------------------------------------------


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix of length n, float64: D[k, i] = √(2/n)·c_k·cos(π(2i + 1)k/(2n)),
    c_0 = 1/√2, c_k = 1 otherwise."""
    i = torch.arange(n, dtype=torch.float64)
    k = i[:, None]
    c = torch.ones_like(k)
    c[0] = 1 / math.sqrt(2)
    return math.sqrt(2 / n) * c * torch.cos(math.pi * (2 * i[None, :] + 1) * k / (2 * n))


def representation(
    d: torch.Tensor, k: torch.Tensor, dct_h: torch.Tensor, dct_c: torch.Tensor
) -> torch.Tensor:
    """Steps 1–2: (N, 3, H, W) differences → (N, 3, H, W) coefficients, all in d's dtype.

    ``k`` is the 3×3 colour matrix K (rows are input components), ``dct_h`` and ``dct_c`` the DCT matrices
    along H and along C.
    """
    n, c, h, w = d.shape
    rows = d.reshape(n, -1, 3)  # 3 consecutive values of the NCHW memory order
    yuv = (rows[..., 0:1] * k[0] + rows[..., 1:2] * k[1] + rows[..., 2:3] * k[2]) * YUV_SCALE
    yuv = yuv.reshape(n, c, h, w)
    along_h = torch.einsum("kh,nchw->nckw", dct_h, yuv)
    return torch.einsum("kc,nchw->nkhw", dct_c, along_h)


def alpha_and_scale(
    latent_alpha: torch.Tensor, latent_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 3: the bounded per-dimension shape α ∈ (0.001, 1.999) and scale > 1e-5 from the latents."""
    alpha = torch.sigmoid(latent_alpha) * (ALPHA_HI - ALPHA_LO) + ALPHA_LO
    scale = (1 - SCALE_LO) * F.softplus(latent_scale + math.log(math.e - 1)) + SCALE_LO
    return alpha, scale


def rho(v: torch.Tensor, alpha: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Barron's general loss ρ(v, α, scale) = (b/a)·(((v/scale)²/b + 1)^(α/2) − 1)."""
    z = (v / scale) ** 2
    b = torch.clamp(torch.abs(alpha - 2), min=EPS)
    sign = torch.where(alpha >= 0, torch.ones_like(alpha), -torch.ones_like(alpha))
    a = sign * torch.clamp(torch.abs(alpha), min=EPS)
    return (b / a) * ((z / b + 1) ** (0.5 * alpha) - 1)


def spline_coordinate(alpha: torch.Tensor) -> torch.Tensor:
    """xs(α) = (2.25α − 4.5)/(|α − 2| + 0.25) + α + 2 for α < 4, else 5/18·log(4α − 15) + 8."""
    low = (2.25 * alpha - 4.5) / (torch.abs(alpha - 2) + 0.25) + alpha + 2
    high = 5 / 18 * torch.log(torch.clamp(4 * alpha - 15, min=1)) + 8  # clamp: keep the unused branch finite
    return torch.where(alpha < 4, low, high)


def log_partition(alpha: torch.Tensor, values: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """log Z(α): the cubic Hermite spline over the knots (values, tangents) at xs = 0, 1/1024, 2/1024, ...

    xs ← xs(α)·1024, i = floor(clip(xs, 0, len − 2)), t = xs − i, h01 = −2t³ + 3t², h00 = 1 − h01,
    h11 = t³ − t², h10 = h11 − t² + t; log Z = v[i]h00 + v[i+1]h01 + m[i]h10 + m[i+1]h11.
    """
    xs = spline_coordinate(alpha) * partition.X_SCALE
    i = torch.floor(torch.clamp(xs, 0, values.shape[0] - 2)).long()
    t = xs - i
    h01 = -2 * t**3 + 3 * t**2
    h00 = 1 - h01
    h11 = t**3 - t**2
    h10 = h11 - t**2 + t
    return values[i] * h00 + values[i + 1] * h01 + tangents[i] * h10 + tangents[i + 1] * h11


# -- the loss ---------------------------------------------------------------------------------------


class Adaptive(Loss):
    """The Adaptive loss as a module, for images of one size (C, H, W) (default 3×64×64, the pretrained size).

    Args:
      config: the loss options (``LossConfig``; the provider builds it).
      image_size: (C, H, W), C 1 or 3 (always 3 internally: grey images are replicated), default (3, 64, 64).
      params: ``{'latent_alpha', 'latent_scale'}`` arrays of shape (1, 3·H·W) (watson_jax's layout); default
        the untrained initial values (α = 1, scale = 1).
      table: the log-partition spline ``{'values', 'tangents', ...}`` (:func:`watson_jax.partition.table`);
        default the table of the default weights folder (computed and saved there on first use).

    Parameters ``latent_alpha``, ``latent_scale`` (1, 3·H·W); non-persistent buffers ``yuv_matrix`` (K, 3×3
    float32), ``dct_h`` (H×H) and ``dct_c`` (3×3) float64, ``spline_values`` and ``spline_tangents`` float64;
    each is cast to the computation's dtype when used (so keep them float64: ``.float()``/``.half()`` on the
    module would round them too).
    """

    def __init__(
        self,
        config: LossConfig,
        image_size=None,
        params: dict | None = None,
        table: dict | None = None,
    ):
        super().__init__(config)
        self.image_size = normalise_image_size(image_size)
        if params is None:
            params = init_params(config.colorspace, self.image_size)
        if table is None:
            table = partition.table()
        for name in PARAMETER_NAMES:
            self.register_parameter(name, nn.Parameter(torch.tensor(np.asarray(params[name], np.float32))))
        c, h, _ = self.image_size
        self.register_buffer(
            "yuv_matrix", torch.from_numpy(np.array(YUV_MATRIX, np.float32)), persistent=False
        )
        self.register_buffer("dct_h", dct_matrix(h), persistent=False)
        self.register_buffer("dct_c", dct_matrix(c), persistent=False)
        self.register_buffer(
            "spline_values", torch.tensor(np.asarray(table["values"], np.float64)), persistent=False
        )
        self.register_buffer(
            "spline_tangents",
            torch.tensor(np.asarray(table["tangents"], np.float64)),
            persistent=False,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, image_size={self.image_size}"

    # -- the computation

    def elementwise_map(self, x, y, *, generator=None):
        """The NLL terms of each element, (N, 3, H, W), of NCHW images (1 channel: replicated to 3)."""
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        n, c, h, w = x.shape
        size = self.latent_alpha.shape[-1]
        if c * h * w != size:
            raise InputError(
                f"this Adaptive loss was built for image_size with 3·H·W = {size} values, but the images "
                f"are {h}×{w}; build it with image_size=(3, {h}, {w}) (pretrained=False: the shipped weights "
                f"exist for 3×64×64 only)."
            )
        dtype = x.dtype
        v = representation(x - y, self.yuv_matrix.to(dtype), self.dct_h.to(dtype), self.dct_c.to(dtype))
        alpha, scale = alpha_and_scale(self.latent_alpha.to(dtype), self.latent_scale.to(dtype))
        log_z = log_partition(alpha, self.spline_values.to(dtype), self.spline_tangents.to(dtype))
        nll = rho(v.reshape(n, size), alpha, scale) + torch.log(scale) + log_z
        return nll.reshape(n, c, h, w)

    def distance(self, x, y, *, generator=None):
        return self.elementwise_map(x, y).sum(dim=(1, 2, 3))

    # -- parameters and the reference's state-dict layout

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """Write the parameters under the reference's key names: ``latent_alpha`` →
        ``.robust_loss.adaptive_lossfun.latent_alpha`` (same for ``latent_scale``)."""
        own = OrderedDict()
        super()._save_to_state_dict(own, prefix, keep_vars)
        for key, value in own.items():
            name = key[len(prefix) :]
            destination[prefix + REFERENCE_PREFIX + name if name in PARAMETER_NAMES else key] = value

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        """Read the parameters from the reference's key names (the inverse of :meth:`_save_to_state_dict`).

        The internal names (``latent_alpha`` without the reference prefix) are not the file layout: in a
        strict load they are reported as unexpected keys, and a missing parameter is reported under its
        reference name.
        """
        internal = {prefix + REFERENCE_PREFIX + name: prefix + name for name in PARAMETER_NAMES}
        renamed = OrderedDict()
        for key, value in state_dict.items():
            if key in internal.values():
                if strict:
                    unexpected_keys.append(key)
                continue
            renamed[internal.get(key, key)] = value
        first_missing = len(missing_keys)
        super()._load_from_state_dict(
            renamed, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        reference = {v: k for k, v in internal.items()}
        missing_keys[first_missing:] = [reference.get(k, k) for k in missing_keys[first_missing:]]

    def jax_params(self) -> dict:
        """The parameters as a watson_jax pytree of numpy arrays (e.g. for ``Loss.replace`` in JAX)."""
        return {name: getattr(self, name).detach().cpu().numpy().copy() for name in PARAMETER_NAMES}

    def load_reference(self, path: str | os.PathLike) -> Adaptive:
        """Load a reference weight file (``{rgb,gray}_adaptive_trial0.pth``) with
        ``load_state_dict(strict=True)``; returns ``self``.

        The file is read with ``torch.load(weights_only=True)`` (no pickled code runs). It must hold exactly
        the two parameters, with this module's shapes, finite; otherwise :class:`watson_jax.WeightsError` is
        raised and nothing is loaded.
        """
        return self._load_reference(path, shape_note=f" (image_size {self.image_size})")
