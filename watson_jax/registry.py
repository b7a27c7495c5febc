"""The table of losses: canonical names, aliases, and what each needs (blocks, randomness, weights).

One entry per loss; the provider, the converter and the command line all read this table, so a new loss
is added here once. Names are matched case-insensitively, with '_' and ' ' read as '-'.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

from .errors import OptionError
from .losses import adaptive, pixel, ssim, watson


def _without_options(fn):
    """Adapt a distance (or map) that takes no options to the common signature."""
    @functools.wraps(fn)
    def distance(params, x, y, **_options):
        return fn(params, x, y)
    return distance


def _without_constants(fn):
    """Adapt a distance that uses no constants to the common signature."""
    return lambda params, x, y, *, constants=None, **options: fn(params, x, y, **options)


def _without_image_size(fn):
    """Adapt an ``init_params(colorspace)`` to the common ``init_params(colorspace, image_size)``."""
    return lambda colorspace, image_size=None: fn(colorspace)


def _adaptive(fn):
    """The Adaptive loss reads its log-partition table from the loss's constants."""
    return lambda params, x, y, *, constants, **_options: fn(params, x, y, table=constants["log_partition"])


@dataclasses.dataclass(frozen=True)
class Metric:
    """A loss family member.

    Attributes:
      name: canonical name, e.g. 'Watson-DFT'.
      aliases: other accepted names (the reference's).
      init_params: (colorspace ('rgb' | 'grey'), image_size) → initial parameter pytree (numpy float32).
      distance: (params, x, y, *, luminance, tuning, key, constants) → (N,), x and y NHWC, already
        colour-checked; ``constants`` are the loss's non-trainable arrays (e.g. a lookup table).
      elementwise: the same signature → the per-element terms whose sum is the distance, NHWC, for
        losses that have them (the reference's 'none' output of L1, L2 and Adaptive).
      weights_stem: converted weights live in '<stem>_{rgb,gray}.npz'; None for parameter-free losses.
      sized: the parameters depend on the image size (built for one ``image_size``).
      blocks: H and W must be multiples of 8.
      random_shift: deterministic=False applies the random 8-pixel shift (needs a key).
      tuning_dropout: tuning mode draws a dropout mask (needs a key).
      planned: for a loss not implemented yet, where it will come from.
    """

    name: str
    aliases: tuple[str, ...] = ()
    init_params: Optional[Callable[[str], dict]] = None
    distance: Optional[Callable] = None
    elementwise: Optional[Callable] = None
    weights_stem: Optional[str] = None
    sized: bool = False
    blocks: bool = False
    random_shift: bool = False
    tuning_dropout: bool = False
    planned: Optional[str] = None


METRICS: tuple[Metric, ...] = (
    Metric("L1", init_params=_without_image_size(lambda cs: pixel.init_params()),
           distance=_without_options(pixel.l1_distance), elementwise=_without_options(pixel.l1_map)),
    Metric("L2", init_params=_without_image_size(lambda cs: pixel.init_params()),
           distance=_without_options(pixel.l2_distance), elementwise=_without_options(pixel.l2_map)),
    Metric("SSIM", init_params=_without_image_size(lambda cs: ssim.init_params()),
           distance=_without_options(ssim.distance)),
    Metric("Watson-DCT", aliases=("Watson",),
           init_params=_without_image_size(functools.partial(watson.init_params, "dct")),
           distance=_without_constants(functools.partial(watson.distance, transform="dct")),
           weights_stem="watson_dct", blocks=True, random_shift=True),
    Metric("Watson-DFT", aliases=("Watson-FFT",),
           init_params=_without_image_size(functools.partial(watson.init_params, "dft")),
           distance=_without_constants(functools.partial(watson.distance, transform="dft")),
           weights_stem="watson_dft", blocks=True, random_shift=True, tuning_dropout=True),
    Metric("Adaptive", init_params=adaptive.init_params, distance=_adaptive(adaptive.distance),
           elementwise=_adaptive(adaptive.nll_map), weights_stem="adaptive", sized=True),
    Metric("Deeploss-VGG", planned="the Deeploss issue (#4)"),
    Metric("Deeploss-Squeeze", planned="the Deeploss issue (#4)"),
)

COLORSPACES = {"rgb": "rgb", "la": "grey", "l": "grey", "grey": "grey", "gray": "grey",
               "greyscale": "grey", "grayscale": "grey"}
REDUCTIONS = ("none", "sum", "mean")
LUMINANCE_MODES = ("image", "batch")


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


_BY_NAME = {_key(alias): m for m in METRICS for alias in (m.name, *m.aliases)}


def available_names() -> list[str]:
    """Canonical names of the losses that can be built now."""
    return [m.name for m in METRICS if m.planned is None]


def lookup(name: str) -> Metric:
    """The metric called ``name`` (case-insensitive, aliases accepted)."""
    if not isinstance(name, str) or _key(name) not in _BY_NAME:
        valid = ", ".join(f"'{m.name}'" + (f" (alias {', '.join(repr(a) for a in m.aliases)})" if m.aliases else "")
                          for m in METRICS)
        raise OptionError(f"unknown loss {name!r}; valid names (case-insensitive): {valid}.")
    metric = _BY_NAME[_key(name)]
    if metric.planned is not None:
        raise NotImplementedError(
            f"'{metric.name}' is not implemented in this version of watson_jax yet; it arrives with "
            f"{metric.planned}. Available now: {', '.join(available_names())}.")
    return metric


def canonical_colorspace(colorspace: str) -> str:
    """'rgb' or 'grey' for any accepted spelling ('RGB'; 'LA', 'L', 'grey', 'gray', 'greyscale', ...)."""
    key = colorspace.strip().lower() if isinstance(colorspace, str) else None
    if key not in COLORSPACES:
        raise OptionError(
            f"unknown colorspace {colorspace!r}; use 'RGB' (3 channels) or a greyscale name: 'LA', 'L', "
            "'grey', 'gray', 'greyscale' (case-insensitive).")
    return COLORSPACES[key]


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise OptionError(f"unknown {what} {value!r}; choose one of {', '.join(repr(c) for c in choices)}.")
    return value
