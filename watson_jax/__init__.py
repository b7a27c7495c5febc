"""watson_jax: the perceptual losses of Czolbe et al. (NeurIPS 2020) as pure JAX functions.

from watson_jax import LossProvider
loss = LossProvider().get_loss_function('Watson-DFT', colorspace='RGB', deterministic=True)
d = loss(x, y)          # x: input, y: target (masking reference), NHWC in [0, 1]
"""

from .errors import (
    InputError,
    InputTypeError,
    MissingBackboneError,
    MissingWeightsError,
    OptionError,
    WeightsError,
)
from .provider import Loss, LossConfig, LossProvider

__version__ = "0.1.0"

__all__ = [
    "LossProvider",
    "Loss",
    "LossConfig",
    "InputError",
    "InputTypeError",
    "OptionError",
    "WeightsError",
    "MissingWeightsError",
    "MissingBackboneError",
    "__version__",
]
