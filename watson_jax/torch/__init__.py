"""watson_jax.torch: the same losses as plain eager PyTorch modules (NCHW tensors), the project's torch
reference.

    from watson_jax.torch import LossProvider
    loss = LossProvider().get_loss_function('Watson-DFT', colorspace='RGB', deterministic=True)
    d = loss(x, y)          # x: input, y: target (masking reference), NCHW in [0, 1]

Names, options and semantics are those of :class:`watson_jax.LossProvider` (per-image luminance by
default, reductions over images, greyscale conversion of 3 channels, clear input errors,
``elementwise=True`` maps of L1, L2 and Adaptive, ``spatial=True`` distance maps of every loss); the Watson,
Adaptive and Deeploss modules' state dicts
have the reference's layout, so the original ``*_trial0.pth`` files load strictly (Deeploss: the heads; its
frozen ImageNet backbone is held as non-persistent buffers).
Only this subpackage imports torch.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "watson_jax.torch needs PyTorch: pip install torch (or the project's 'torch' extra); "
        "the JAX losses in watson_jax do not."
    ) from _err

from .adaptive import Adaptive
from .base import Loss
from .bridge import JaxLoss, from_jax
from .deeploss import Deeploss
from .pixel import L1, L2
from .provider import LossProvider
from .ssim import SSIM
from .watson import Watson, WatsonChannel

__all__ = [
    "LossProvider",
    "Loss",
    "JaxLoss",
    "from_jax",
    "L1",
    "L2",
    "SSIM",
    "Watson",
    "WatsonChannel",
    "Adaptive",
    "Deeploss",
]
