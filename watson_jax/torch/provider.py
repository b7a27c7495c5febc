"""``LossProvider().get_loss_function(...)`` → a ``torch.nn.Module`` (the torch counterpart of
:mod:`watson_jax.provider`: same names, aliases, options and semantics, NCHW tensors)."""

from __future__ import annotations

from .. import registry
from ..provider import load_parameters, make_config
from .adaptive import Adaptive
from .base import Loss
from .deeploss import Deeploss
from .pixel import L1, L2
from .ssim import SSIM
from .watson import Watson

#: canonical name → (config, LoadedParameters) → module
_BUILDERS = {
    "L1": lambda config, loaded: L1(config),
    "L2": lambda config, loaded: L2(config),
    "SSIM": lambda config, loaded: SSIM(config),
    "Watson-DCT": lambda config, loaded: Watson("dct", config, loaded.params),
    "Watson-DFT": lambda config, loaded: Watson("dft", config, loaded.params),
    "Adaptive": lambda config, loaded: Adaptive(config, loaded.image_size, loaded.params, loaded.table),
    "Deeploss-VGG": lambda config, loaded: Deeploss(config, loaded.params, loaded.backbone),
    "Deeploss-Squeeze": lambda config, loaded: Deeploss(config, loaded.params, loaded.backbone),
}


class LossProvider:
    """Builds torch losses by name, like the reference's ``LossProvider``."""

    @staticmethod
    def available() -> list[str]:
        """The canonical names of the losses available in watson_jax.torch."""
        return [name for name in registry.available_names() if name in _BUILDERS]

    def get_loss_function(
        self,
        name: str,
        colorspace: str = "RGB",
        reduction: str = "sum",
        deterministic: bool = False,
        pretrained: bool = True,
        image_size: tuple[int, ...] | None = None,
        *,
        luminance: str = "image",
        precision: str = "highest",
        weights_dir=None,
        download: bool = True,
    ) -> Loss:
        """Build a loss as a ``torch.nn.Module`` in evaluation mode, on the CPU, float32.

        Args:
          name: 'L1', 'L2', 'SSIM', 'Watson-DCT' ('Watson'), 'Watson-DFT' ('Watson-FFT'), 'Adaptive',
            'Deeploss-VGG', 'Deeploss-Squeeze'; case-insensitive.
          colorspace: 'RGB', or greyscale: 'LA', 'L', 'grey', 'gray', 'greyscale' (case-insensitive).
          reduction: 'none' → one distance per image (N,); 'sum' → their sum; 'mean' → their mean.
          deterministic: False (default) applies the Watson losses' random 8-pixel shift, drawn from the
            call's ``generator`` (or torch's global RNG).
          pretrained: load the converted 2AFC-tuned weights (Watson, Adaptive and the Deeploss heads; the
            same ``.npz`` files the JAX losses use) and freeze them (``requires_grad=False``, as the reference
            does); else the trainable initial parameters (Deeploss: heads of ones, the plain channel sum).
            Deeploss always needs its converted ImageNet backbone (``vgg16_backbone.npz`` or
            ``squeezenet1_1_backbone.npz`` in the weights folder), held as frozen non-persistent buffers.
          image_size: (C, H, W) of the images, for the Adaptive loss, whose parameters are per dimension
            (default and pretrained: (3, 64, 64); OptionError for pretrained=True with another size); unused
            by the other losses.
          luminance: 'image' (each image's own mean luminance) or 'batch' (the reference's batch-wide mean).
          precision: 'highest' (default): Deeploss's convolutions (forward and backward) in full float32,
            TF32 switched off for them on CUDA; 'default': torch's own settings (e.g. TF32 cuDNN
            convolutions on NVIDIA GPUs), faster for training. The other losses compute in full precision
            either way.
          weights_dir: folder of converted weights; default ``$WATSON_JAX_WEIGHTS`` or
            ``~/.cache/watson_jax``.
          download: fetch, check (pinned sha256) and convert missing pretrained weights on first use
            (False, or ``$WATSON_JAX_OFFLINE=1``: never touch the network).
            The Adaptive loss also reads its log-partition table from there
            (:func:`watson_jax.partition.table`: computed on first use, ~25 s, and saved there).

        The module's ``train()`` mode is the reference's tuning mode (Watson-DFT: phase of the four real DFT
        bins active, dropout 0.5 on the per-coefficient terms); it is returned in ``eval()`` mode.
        """
        config = make_config(name, colorspace, reduction, deterministic, luminance, precision)
        if config.name not in _BUILDERS:
            raise NotImplementedError(
                f"'{config.name}' is not implemented in watson_jax.torch yet; available: "
                f"{', '.join(self.available())}."
            )
        loaded = load_parameters(
            config, pretrained=pretrained, image_size=image_size, weights_dir=weights_dir, download=download
        )
        loss = _BUILDERS[config.name](config, loaded)
        if pretrained:
            loss.requires_grad_(False)
        return loss.eval()
