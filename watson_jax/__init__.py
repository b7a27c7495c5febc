"""watson_jax: the perceptual losses of Czolbe et al. (NeurIPS 2020) as pure JAX functions.

One typed function per loss (inputs ``x`` and targets ``y``: NHWC batches in [0, 1]; one distance per
image)::

    import watson_jax
    params = watson_jax.pretrained_params("Watson-DFT", "RGB")
    d = watson_jax.watson_dft(x, y, params)                     # (N,)
    d = watson_jax.watson_dft(x, y, params, key=key, random_shift=True)   # training, as the paper

and the reference's entry point, a façade over them::

    from watson_jax import LossProvider
    loss = LossProvider().get_loss_function("Watson-DFT", colorspace="RGB", deterministic=True)
    total = loss(x, y)
"""

from .errors import (
    InputError,
    InputTypeError,
    MissingBackboneError,
    MissingWeightsError,
    OptionError,
    WeightsError,
)
from .functions import (
    adaptive,
    deeploss_squeeze,
    deeploss_vgg,
    l1,
    l2,
    ssim,
    watson_dct,
    watson_dft,
)
from .parameters import init_params, load_backbone, log_partition_table, pretrained_params
from .provider import Loss, LossConfig, LossProvider

__version__ = "0.1.0"

__all__ = [
    # the losses
    "l1",
    "l2",
    "ssim",
    "watson_dct",
    "watson_dft",
    "adaptive",
    "deeploss_vgg",
    "deeploss_squeeze",
    # their parameters
    "init_params",
    "pretrained_params",
    "load_backbone",
    "log_partition_table",
    # the reference-compatible façade
    "LossProvider",
    "Loss",
    "LossConfig",
    # errors
    "InputError",
    "InputTypeError",
    "OptionError",
    "WeightsError",
    "MissingWeightsError",
    "MissingBackboneError",
    "__version__",
]
