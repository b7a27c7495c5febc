"""``LossProvider().get_loss_function(...)`` → a ``torch.nn.Module`` (the torch counterpart of
:mod:`watson_jax.provider`: same names, aliases, options and semantics, NCHW tensors)."""

from __future__ import annotations

import functools
from typing import Optional

from .. import registry, weights
from ..provider import LossConfig
from .base import Loss
from .pixel import L1, L2
from .ssim import SSIM
from .watson import Watson

#: canonical name → (config, params) → module
_BUILDERS = {
    "L1": lambda config, params: L1(config),
    "L2": lambda config, params: L2(config),
    "SSIM": lambda config, params: SSIM(config),
    "Watson-DCT": functools.partial(Watson, "dct"),
    "Watson-DFT": functools.partial(Watson, "dft"),
}


class LossProvider:
    """Builds torch losses by name, like the reference's ``LossProvider``."""

    @staticmethod
    def available() -> list[str]:
        """The canonical names of the losses available in watson_jax.torch."""
        return [name for name in registry.available_names() if name in _BUILDERS]

    def get_loss_function(self, name: str, colorspace: str = "RGB", reduction: str = "sum",
                          deterministic: bool = False, pretrained: bool = True,
                          image_size: Optional[tuple[int, ...]] = None, *, luminance: str = "image",
                          weights_dir=None) -> Loss:
        """Build a loss as a ``torch.nn.Module`` in evaluation mode, on the CPU, float32.

        Args:
          name: 'L1', 'L2', 'SSIM', 'Watson-DCT' ('Watson'), 'Watson-DFT' ('Watson-FFT'); case-insensitive.
          colorspace: 'RGB', or greyscale: 'LA', 'L', 'grey', 'gray', 'greyscale' (case-insensitive).
          reduction: 'none' → one distance per image (N,); 'sum' → their sum; 'mean' → their mean.
          deterministic: False (default) applies the Watson losses' random 8-pixel shift, drawn from the
            call's ``generator`` (or torch's global RNG).
          pretrained: load the converted 2AFC-tuned weights (Watson losses; the same ``.npz`` files the JAX
            losses use) and freeze them (``requires_grad=False``, as the reference does); else the
            trainable initial parameters.
          image_size: (C, H, W) for losses whose parameters depend on the image size (Adaptive); unused by
            the losses available now.
          luminance: 'image' (each image's own mean luminance) or 'batch' (the reference's batch-wide mean).
          weights_dir: folder of converted weights; default ``$WATSON_JAX_WEIGHTS`` or ``~/.cache/watson_jax``.

        The module's ``train()`` mode is the reference's tuning mode (Watson-DFT: phase of the four real DFT
        bins active, dropout 0.5 on the per-coefficient terms); it is returned in ``eval()`` mode.
        """
        del image_size  # only the Adaptive loss (a later issue) depends on it
        metric = registry.lookup(name)
        config = LossConfig(
            name=metric.name, colorspace=registry.canonical_colorspace(colorspace),
            reduction=registry.check_choice(reduction, registry.REDUCTIONS, "reduction"),
            deterministic=bool(deterministic),
            luminance=registry.check_choice(luminance, registry.LUMINANCE_MODES, "luminance mode"))
        if metric.name not in _BUILDERS:
            raise NotImplementedError(f"'{metric.name}' is not implemented in watson_jax.torch yet; available: "
                                      f"{', '.join(self.available())}.")
        params = metric.init_params(config.colorspace)
        if pretrained and metric.weights_stem is not None:
            params = weights.load_pretrained(metric.weights_stem, config.colorspace, params, weights_dir)
        loss = _BUILDERS[metric.name](config, params)
        if pretrained:
            loss.requires_grad_(False)
        return loss.eval()
