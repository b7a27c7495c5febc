"""The table of losses: canonical name → public function, initial parameters and a few flags.

One entry per loss; the provider, the converter and the command line all read this table, so a new loss
is added here once. Names are matched case-insensitively, with '_' and ' ' read as '-'. The provider
calls a loss through its entry with the typed :class:`CallOptions`; each entry's adapters below pass on
exactly the options its function takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from . import functions
from .errors import OptionError
from .losses import adaptive, deeploss, pixel, ssim, watson


@dataclasses.dataclass(frozen=True)
class CallOptions:
    """The options of one call of a loss built by the provider (see :meth:`watson_jax.Loss.apply`)."""

    key: jax.Array | None = None
    random_shift: bool = False  # the Watson losses' random shift (deterministic=False)
    shift: functions.Shift | None = None  # an explicit shift offset instead
    tuning: bool = False
    luminance: str = "image"
    precision: str = "highest"
    table: dict | None = None  # Adaptive's log-partition table
    backbone: dict | None = None  # a Deeploss loss's frozen backbone


#: (params, x, y, options) → an array: a distance per image (N,), elementwise terms or a distance map.
Call = Callable[[dict, jax.Array, jax.Array, CallOptions], jax.Array]


@dataclasses.dataclass(frozen=True)
class Metric:
    """A loss of the table.

    Attributes:
      name: canonical name, e.g. 'Watson-DFT'.
      distance: the loss's public function (:mod:`watson_jax.functions`), called with the options it takes.
      init_params: (colorspace ('rgb' | 'grey'), image_size or None) → initial parameter pytree (numpy).
      aliases: other accepted names (the reference's).
      elementwise: the per-element terms whose sum is the distance, NHWC, for the losses that have them
        (the reference's 'none' output of L1, L2 and Adaptive).
      distance_map: (N, H, W), where the images differ, summing over an image's pixels to its distance
        (approximately for Deeploss); the elementwise terms summed over channels when not given.
      weights_stem: converted weights live in '<stem>_{rgb,gray}.npz'; None for parameter-free losses.
      backbone: the ImageNet feature extractor a Deeploss loss needs (converted from torchvision).
      sized: the parameters depend on the image size (Adaptive, built for one ``image_size``).
      random_shift: a Watson loss: 8×8 blocks (H and W multiples of 8) and the random shift of
        deterministic=False (needs a key).
      tuning_dropout: tuning mode draws a dropout mask (needs a key).
    """

    name: str
    distance: Call
    init_params: Callable[[str, tuple[int, int, int] | None], dict]
    aliases: tuple[str, ...] = ()
    elementwise: Call | None = None
    distance_map: Call | None = None
    weights_stem: str | None = None
    backbone: deeploss.Backbone | None = None
    sized: bool = False
    random_shift: bool = False
    tuning_dropout: bool = False

    @property
    def blocks(self) -> bool:
        """H and W must be multiples of 8 (the Watson losses)."""
        return self.random_shift

    @property
    def min_size(self) -> int:
        """The smallest image height and width the loss takes."""
        return self.backbone.min_size if self.backbone is not None else 1

    def spatial(self, params: dict, x: jax.Array, y: jax.Array, options: CallOptions) -> jax.Array:
        """The distance map (see ``distance_map``)."""
        if self.distance_map is not None:
            return self.distance_map(params, x, y, options)
        return self.elementwise(params, x, y, options).sum(axis=-1)


# -- the adapters: each passes its function exactly the options it takes -----------------------------------


def _untuned(colorspace: str, image_size=None) -> dict:
    return {}


def _pixel(name: str, function, elementwise) -> Metric:
    return Metric(
        name,
        distance=lambda params, x, y, o: function(x, y),
        init_params=_untuned,
        elementwise=lambda params, x, y, o: elementwise(params, x, y),
    )


def _watson(name: str, alias: str, transform: str, function, **flags) -> Metric:
    def distance(params, x, y, o: CallOptions):
        return function(
            x,
            y,
            params,
            key=o.key,
            random_shift=o.random_shift,
            shift=o.shift,
            luminance=o.luminance,
            tuning=o.tuning,
        )

    def distance_map(params, x, y, o: CallOptions):
        return watson.distance_map(params, x, y, transform=transform, luminance=o.luminance)

    return Metric(
        name,
        distance=distance,
        init_params=lambda colorspace, image_size=None: watson.init_params(transform, colorspace),
        aliases=(alias,),
        distance_map=distance_map,
        weights_stem=f"watson_{transform}",
        random_shift=True,
        **flags,
    )


def _deeploss(name: str, stem: str, function) -> Metric:
    def distance(params, x, y, o: CallOptions):
        return function(x, y, params, backbone=o.backbone, key=o.key, tuning=o.tuning, precision=o.precision)

    def distance_map(params, x, y, o: CallOptions):
        return deeploss.distance_map(params, x, y, metric=name, backbone=o.backbone)

    return Metric(
        name,
        distance=distance,
        init_params=lambda colorspace, image_size=None: deeploss.init_params(name, colorspace),
        distance_map=distance_map,
        weights_stem=stem,
        backbone=deeploss.BACKBONES[name],
        tuning_dropout=True,
    )


METRICS: tuple[Metric, ...] = (
    _pixel("L1", functions.l1, pixel.l1_map),
    _pixel("L2", functions.l2, pixel.l2_map),
    Metric(
        "SSIM",
        distance=lambda params, x, y, o: functions.ssim(x, y),
        init_params=_untuned,
        distance_map=lambda params, x, y, o: ssim.distance_map(params, x, y),
    ),
    _watson("Watson-DCT", "Watson", "dct", functions.watson_dct),
    _watson("Watson-DFT", "Watson-FFT", "dft", functions.watson_dft, tuning_dropout=True),
    Metric(
        "Adaptive",
        distance=lambda params, x, y, o: functions.adaptive(x, y, params, table=o.table),
        init_params=adaptive.init_params,
        elementwise=lambda params, x, y, o: adaptive.nll_map(params, x, y, table=o.table),
        weights_stem="adaptive",
        sized=True,
    ),
    _deeploss("Deeploss-VGG", "deeploss_vgg", functions.deeploss_vgg),
    _deeploss("Deeploss-Squeeze", "deeploss_squeeze", functions.deeploss_squeeze),
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
PRECISIONS = functions.PRECISIONS


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
    """``value`` if it is one of ``choices``, else an OptionError naming them (``what``: e.g. 'reduction')."""
    if value not in choices:
        raise OptionError(f"unknown {what} {value!r}; choose one of {', '.join(repr(c) for c in choices)}.")
    return value
