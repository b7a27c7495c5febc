"""Exceptions raised by watson_jax.

Every error says what was wrong and how to fix it. They subclass the built-in exception a caller would
naturally catch (``ValueError``, ``TypeError``, ``FileNotFoundError``), so generic handlers keep working.
"""


class InputError(ValueError):
    """An image argument has the wrong rank, layout, channel count, dtype or size."""


class InputTypeError(InputError, TypeError):
    """An image argument has a dtype the losses cannot differentiate (e.g. integers)."""


class OptionError(ValueError):
    """An unknown loss name, colour space, reduction or luminance mode, or a missing PRNG key."""


class WeightsError(RuntimeError):
    """Pretrained weights are missing, corrupt, or do not match the loss they are loaded into."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """The converted weight file for a loss does not exist; the message names the converter command."""


class MissingBackboneError(MissingWeightsError):
    """A Deeploss loss's converted ImageNet backbone does not exist (needed even with pretrained=False); the
    message names the torchvision checkpoint to provide and the converter command."""
