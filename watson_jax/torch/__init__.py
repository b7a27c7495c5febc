"""watson_jax.torch: this project's PyTorch implementation of its losses, as eager ``torch.nn.Module`` s
on NCHW tensors.

    from watson_jax.torch import LossProvider
    loss = LossProvider().get_loss_function('Watson-DFT', colorspace='RGB', deterministic=True)
    d = loss(x, y)          # x: input, y: target (masking reference), NCHW in [0, 1]

It is written by the same project as the JAX losses and shares their constants, parameter layouts and
input checks (:mod:`watson_jax.constants`, :mod:`watson_jax.checks`), so it is *not* an independent
oracle: agreement between the two sides shows that two implementations of one reading agree, not that the
reading is right. The oracle is the original implementation, through the golden files and hidden fixtures
the tests compare both sides with. The maths of each loss is documented once, in its JAX module
(:mod:`watson_jax.losses`) and in docs/reference.md.

What differs from the JAX side: tensors are NCHW (channels first) instead of NHWC; tuning mode is the
module's ``train()`` mode and its randomness comes from a ``torch.Generator`` instead of a JAX key; the
computations are written directly from the formulas (``torch.abs``, ``torch.atan2``, ``torch.acos``, full
2-D convolutions) without the JAX side's hand-written derivatives and fused transforms. Names, options and
semantics are those of :class:`watson_jax.LossProvider` (per-image luminance by default, reductions over
images, greyscale conversion of 3 channels, the same input errors, ``elementwise=True`` maps of L1, L2 and
Adaptive, ``spatial=True`` distance maps of every loss). The Watson, Adaptive and Deeploss modules' state
dicts have the reference's layout, so the original ``*_trial0.pth`` files load strictly (Deeploss: the
heads; its frozen ImageNet backbone is held as non-persistent buffers). :func:`from_jax` instead wraps a
JAX loss for use in a torch training loop. Only this subpackage imports torch.
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
