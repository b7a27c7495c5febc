"""The table of losses: canonical names, aliases, and what each needs (blocks, randomness, weights).

One entry per loss; the provider, the converter and the command line all read this table, so a new loss
is added here once. Names are matched case-insensitively, with '_' and ' ' read as '-'.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax.numpy as jnp

from .errors import OptionError
from .losses import adaptive, deeploss, pixel, ssim, watson


def _taking(fn, *names: str, **fixed):
    """Adapt a loss function to the common signature ``(params, x, y, **options)``, passing on only the
    options it takes (``names``) and fixed keyword arguments."""

    @functools.wraps(fn)
    def adapted(params, x, y, **options):
        return fn(params, x, y, **{n: options[n] for n in names}, **fixed)

    return adapted


def _with_table(fn):
    """The Adaptive loss reads its log-partition table from the loss's constants."""
    return lambda params, x, y, **options: fn(params, x, y, table=options["constants"]["log_partition"])


def _fixed_size(init):
    """Adapt an ``init_params(colorspace)`` to the common ``init_params(colorspace, image_size)``."""
    return lambda colorspace, image_size=None: init(colorspace)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A loss family member.

    Attributes:
      name: canonical name, e.g. 'Watson-DFT'.
      aliases: other accepted names (the reference's).
      init_params: (colorspace ('rgb' | 'grey'), image_size) → initial parameter pytree (numpy float32).
      distance: (params, x, y, **options) → (N,), x and y NHWC, already colour-checked. The options are
        ``luminance``, ``tuning``, ``key``, ``constants`` (the loss's static arrays, e.g. a lookup table),
        ``backbone`` (its frozen feature-extractor parameters) and ``shift`` (the shift offset of the
        images, or None, for the losses with ``random_shift``); each loss takes the ones it needs.
      elementwise: the same signature → the per-element terms whose sum is the distance, NHWC, for
        losses that have them (the reference's 'none' output of L1, L2 and Adaptive).
      distance_map: the same signature → (N, H, W), where the images differ: a map whose sum over an
        image's pixels is its distance (approximately for Deeploss). Derived from ``elementwise``
        (summed over channels) when not given.
      weights_stem: converted weights live in '<stem>_{rgb,gray}.npz'; None for parameter-free losses.
      backbone: the ImageNet feature extractor a Deeploss loss needs (converted from torchvision).
      sized: the parameters depend on the image size (built for one ``image_size``).
      blocks: H and W must be multiples of 8.
      random_shift: deterministic=False applies the random 8-pixel shift (needs a key); the loss applies it
        itself, given the ``shift`` option.
      tuning_dropout: tuning mode draws a dropout mask (needs a key).
    """

    name: str
    aliases: tuple[str, ...] = ()
    init_params: Callable | None = None
    distance: Callable | None = None
    elementwise: Callable | None = None
    distance_map: Callable | None = None
    weights_stem: str | None = None
    backbone: deeploss.Backbone | None = None
    sized: bool = False
    blocks: bool = False
    random_shift: bool = False
    tuning_dropout: bool = False

    @property
    def min_size(self) -> int:
        """The smallest image height and width the loss takes."""
        return self.backbone.min_size if self.backbone is not None else 1

    def spatial(self, params, x, y, **options):
        """The distance map (see ``distance_map``)."""
        if self.distance_map is not None:
            return self.distance_map(params, x, y, **options)
        return jnp.sum(self.elementwise(params, x, y, **options), axis=-1)


def _pixel(name: str, elementwise, distance) -> Metric:
    return Metric(
        name,
        init_params=lambda colorspace, image_size=None: pixel.init_params(),
        distance=_taking(distance),
        elementwise=_taking(elementwise),
    )


def _watson(name: str, alias: str, transform: str, **flags) -> Metric:
    options = ("luminance", "tuning", "key", "shift")
    return Metric(
        name,
        aliases=(alias,),
        init_params=_fixed_size(functools.partial(watson.init_params, transform)),
        distance=_taking(watson.distance, *options, transform=transform),
        distance_map=_taking(watson.distance_map, "luminance", transform=transform),
        weights_stem=f"watson_{transform}",
        blocks=True,
        random_shift=True,
        **flags,
    )


def _deeploss(name: str, stem: str) -> Metric:
    return Metric(
        name,
        init_params=_fixed_size(functools.partial(deeploss.init_params, name)),
        distance=_taking(deeploss.distance, "backbone", "tuning", "key", metric=name),
        distance_map=_taking(deeploss.distance_map, "backbone", metric=name),
        weights_stem=stem,
        backbone=deeploss.BACKBONES[name],
        tuning_dropout=True,
    )


METRICS: tuple[Metric, ...] = (
    _pixel("L1", pixel.l1_map, pixel.l1_distance),
    _pixel("L2", pixel.l2_map, pixel.l2_distance),
    Metric(
        "SSIM",
        init_params=lambda colorspace, image_size=None: ssim.init_params(),
        distance=_taking(ssim.distance),
        distance_map=_taking(ssim.distance_map),
    ),
    _watson("Watson-DCT", "Watson", "dct"),
    _watson("Watson-DFT", "Watson-FFT", "dft", tuning_dropout=True),
    Metric(
        "Adaptive",
        init_params=adaptive.init_params,
        distance=_with_table(adaptive.distance),
        elementwise=_with_table(adaptive.nll_map),
        weights_stem="adaptive",
        sized=True,
    ),
    _deeploss("Deeploss-VGG", "deeploss_vgg"),
    _deeploss("Deeploss-Squeeze", "deeploss_squeeze"),
)

COLORSPACES = {
    "rgb": "rgb",
    "la": "grey",
    "l": "grey",
    "grey": "grey",
    "gray": "grey",
    "greyscale": "grey",
    "grayscale": "grey",
}
REDUCTIONS = ("none", "sum", "mean")
LUMINANCE_MODES = ("image", "batch")
PRECISIONS = ("highest", "default")


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


_BY_NAME = {_key(alias): m for m in METRICS for alias in (m.name, *m.aliases)}


def available_names() -> list[str]:
    """Canonical names of all losses."""
    return [m.name for m in METRICS]


def lookup(name: str) -> Metric:
    """The metric called ``name`` (case-insensitive, aliases accepted)."""
    if not isinstance(name, str) or _key(name) not in _BY_NAME:
        valid = ", ".join(
            f"'{m.name}'" + (f" (alias {', '.join(repr(a) for a in m.aliases)})" if m.aliases else "")
            for m in METRICS
        )
        raise OptionError(f"unknown loss {name!r}; valid names (case-insensitive): {valid}.")
    return _BY_NAME[_key(name)]


def canonical_colorspace(colorspace: str) -> str:
    """'rgb' or 'grey' for any accepted spelling ('RGB'; 'LA', 'L', 'grey', 'gray', 'greyscale', ...)."""
    key = colorspace.strip().lower() if isinstance(colorspace, str) else None
    if key not in COLORSPACES:
        raise OptionError(
            f"unknown colorspace {colorspace!r}; use 'RGB' (3 channels) or a greyscale name: 'LA', 'L', "
            "'grey', 'gray', 'greyscale' (case-insensitive)."
        )
    return COLORSPACES[key]


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise OptionError(f"unknown {what} {value!r}; choose one of {', '.join(repr(c) for c in choices)}.")
    return value
