"""The public entry point: ``LossProvider().get_loss_function(...)`` → a :class:`Loss`.

A :class:`Loss` is a JAX pytree whose only leaves are its parameters; its options (name, colour space,
reduction, ...) are static. It can therefore be passed into ``jax.jit``, ``jax.vmap``, ``jax.grad`` and
sharded like any container of arrays, and tuned with optax through its pure :meth:`Loss.apply`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import functions, partition, registry, weights
from .color import rgb_to_grey
from .errors import OptionError
from .losses import adaptive
from .validation import check_images, check_shift, compute_dtype


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The static options of a loss (hashable; part of the pytree structure, never traced)."""

    name: str
    colorspace: str  # 'rgb' | 'grey'
    reduction: str  # 'none' | 'sum' | 'mean'
    deterministic: bool
    luminance: str  # 'image' | 'batch'
    precision: str = "highest"  # 'highest' | 'default': of convolutions and matrix products

    @property
    def metric(self) -> registry.Metric:
        return registry.lookup(self.name)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channel counts the images may have: 3 for RGB, 1 or 3 (converted) for greyscale."""
        return (3,) if self.colorspace == "rgb" else (1, 3)

    def check_call(
        self, *, shift=None, elementwise: bool = False, spatial: bool = False, tuning: bool = False
    ) -> None:
        """Raise OptionError for call options this loss does not have (shared by the JAX loss, the torch
        modules and the bridge; the shift's values are checked by each side's own validation)."""
        metric = self.metric
        if elementwise and metric.elementwise is None:
            with_maps = ", ".join(m.name for m in registry.METRICS if m.elementwise is not None)
            raise OptionError(
                f"{metric.name} has no elementwise terms; elementwise=True works for {with_maps}."
            )
        if shift is not None and not metric.random_shift:
            raise OptionError(f"shift= applies to the Watson losses only; {metric.name} has no shift.")
        if spatial and (elementwise or tuning or shift is not None):
            raise OptionError(
                "spatial=True returns the distance map of the unshifted images in evaluation mode; "
                "it cannot be combined with elementwise=True, tuning=True or shift=."
            )


class Constants:
    """Fixed arrays of a loss (e.g. Adaptive's log-partition table), nested dicts of numpy arrays.

    They belong to the pytree's static structure, not to its leaves, so no gradient or optimiser update
    over a :class:`Loss` touches them; under ``jit`` they are compile-time constants. Hashed by content.
    """

    def __init__(self, arrays: dict | None = None):
        self.arrays = {} if arrays is None else arrays
        digest = hashlib.sha256()
        for path, value in sorted(weights.flatten(self.arrays).items()):
            digest.update(path.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        self._digest = digest.hexdigest()

    def __getitem__(self, name: str):
        return self.arrays[name]

    def __hash__(self) -> int:
        return hash(self._digest)

    def __eq__(self, other) -> bool:
        return isinstance(other, Constants) and other._digest == self._digest


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["params", "frozen"], meta_fields=["config", "constants"]
)
@dataclasses.dataclass(eq=False, repr=False)
class Loss:
    """A perceptual or pixel loss with its parameters: ``loss(x, y, key=None)``.

    ``x`` is the input and ``y`` the target (for Watson, the masking reference): NHWC float arrays with values
    in [0, 1], 3 channels for 'RGB', 1 or 3 (converted to grey) for greyscale. Returns one distance per image
    (N,) for reduction 'none', else their sum or mean.

    A pytree: the parameters and the frozen arrays (a Deeploss backbone, up to 15M numbers: an argument of
    compiled programs, not baked into them) are its leaves; the options and the constants its static
    structure.
    """

    params: Any
    config: LossConfig
    constants: Constants = dataclasses.field(default_factory=lambda: Constants())
    frozen: Any = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.constants is None:
            self.constants = Constants()
        if self.frozen is None:
            self.frozen = {}

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Loss({c.name!r}, colorspace={c.colorspace!r}, reduction={c.reduction!r}, "
            f"deterministic={c.deterministic}, luminance={c.luminance!r}, precision={c.precision!r})"
        )

    @property
    def name(self) -> str:
        return self.config.name

    def replace(self, params) -> Loss:
        """The same loss with other parameters (e.g. after an optax update)."""
        return Loss(params, self.config, self.constants, self.frozen)

    def needs_key(self, *, tuning: bool = False, shift=None, spatial: bool = False) -> bool:
        """Whether a call with these options draws random numbers and so needs ``key``."""
        if spatial:
            return False
        metric = self.config.metric
        random_shift = metric.random_shift and not self.config.deterministic and shift is None
        return random_shift or (tuning and metric.tuning_dropout)

    def __call__(
        self,
        x,
        y,
        key=None,
        *,
        shift=None,
        tuning: bool = False,
        elementwise: bool = False,
        spatial: bool = False,
    ) -> jax.Array:
        return self.apply(
            self.params,
            x,
            y,
            key,
            shift=shift,
            tuning=tuning,
            elementwise=elementwise,
            spatial=spatial,
        )

    def apply(
        self,
        params,
        x,
        y,
        key=None,
        *,
        shift=None,
        tuning: bool = False,
        elementwise: bool = False,
        spatial: bool = False,
    ) -> jax.Array:
        """The loss with explicit parameters: a pure function of (params, x, y, key), for tuning.

        Args:
          params: a pytree with the structure of ``self.params``.
          x, y: input and target, NHWC, values in [0, 1].
          key: a ``jax.random`` key; required when the call is random (Watson with deterministic=False,
            or tuning mode of Watson-DFT), ignored otherwise.
          shift: an explicit shift offset (sx, sy) in {0..7}² for the Watson losses, used instead of a
            random one ((4, 4) is no shift); may be traced.
          tuning: the reference's training mode (Watson-DFT: phase of the four real bins active and
            dropout(0.5) on the per-coefficient terms). Off for evaluation and for training generators.
          elementwise: return the per-element terms whose sum over an image is its distance, NHWC,
            instead of the reduction (L1, L2, Adaptive: the reference's reduction='none' output).
          spatial: return where the images differ, a map of shape (N, H, W) at input resolution whose sum
            over an image's pixels is its distance (for Deeploss approximately: its layers' maps are
            upsampled bilinearly, as LPIPS's spatial mode does); no reduction, no random shift, no key.
            L1, L2, Adaptive: the elementwise terms summed over channels (Adaptive's live on the
            reference's representation, a DCT along whole columns, so a local change lights up its
            columns); SSIM: 1 − SSIM map; Watson: each 8×8 block's share of the distance, spread over
            its pixels.
        """
        c = self.config
        metric = c.metric
        c.check_call(shift=shift, elementwise=elementwise, spatial=spatial, tuning=tuning)
        x, y = check_images(
            x,
            y,
            channels=c.channels,
            loss_name=metric.name,
            blocks=metric.blocks,
            min_size=metric.min_size,
        )
        if shift is not None:
            check_shift(shift)
        needs_key = self.needs_key(tuning=tuning, shift=shift, spatial=spatial)
        if needs_key and key is None:
            why = (
                "tuning mode draws a dropout mask"
                if tuning and metric.tuning_dropout
                else ("deterministic=False applies a random 8-pixel shift")
            )
            raise OptionError(
                f"{metric.name}: {why}, so the call needs a PRNG key: loss(x, y, key=jax.random.key(0)). "
                "Build the loss with deterministic=True for a call without randomness."
            )

        dtype = compute_dtype(x, y)
        x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        params = jax.tree.map(lambda p: jnp.asarray(p, dtype), params)
        if c.colorspace == "grey" and x.shape[-1] == 3:
            x, y = rgb_to_grey(x), rgb_to_grey(y)
        options = registry.CallOptions(
            key=key if needs_key else None,
            random_shift=metric.random_shift and not c.deterministic and not spatial,
            shift=None if spatial else shift,
            tuning=tuning,
            luminance=c.luminance,
            precision=c.precision,
            table=self.constants.arrays.get("log_partition"),
            backbone=jax.tree.map(lambda a: jax.lax.stop_gradient(jnp.asarray(a, dtype)), self.frozen),
        )
        with functions.matmul_precision(c.precision):
            if spatial:
                return metric.spatial(params, x, y, options)
            if elementwise:
                return metric.elementwise(params, x, y, options)
            per_image = metric.distance(params, x, y, options)
        if c.reduction == "none":
            return per_image
        return jnp.sum(per_image) if c.reduction == "sum" else jnp.mean(per_image)


def make_config(
    name: str,
    colorspace: str,
    reduction: str,
    deterministic: bool,
    luminance: str,
    precision: str = "highest",
) -> LossConfig:
    """Check and canonicalise the options of a loss (shared by the JAX and the torch providers)."""
    return LossConfig(
        name=registry.lookup(name).name,
        colorspace=registry.canonical_colorspace(colorspace),
        reduction=registry.check_choice(reduction, registry.REDUCTIONS, "reduction"),
        deterministic=bool(deterministic),
        luminance=registry.check_choice(luminance, registry.LUMINANCE_MODES, "luminance mode"),
        precision=registry.check_choice(precision, registry.PRECISIONS, "precision"),
    )


@dataclasses.dataclass
class LoadedParameters:
    """What a loss is built from (numpy arrays): its parameters, Adaptive's log-partition table and checked
    image size, a Deeploss backbone."""

    params: dict
    table: dict | None = None
    image_size: tuple[int, int, int] | None = None
    backbone: dict | None = None


def load_parameters(
    config: LossConfig, *, pretrained: bool, image_size, weights_dir, download: bool = True
) -> LoadedParameters:
    """The parameters of a loss, pretrained from the weights folder or initial, and what else it needs (the
    Adaptive table, a Deeploss backbone)."""
    metric = config.metric
    table = backbone = None
    if metric.sized:
        image_size = adaptive.normalise_image_size(image_size)
        if pretrained and image_size != adaptive.PRETRAINED_SIZE:
            raise OptionError(
                f"the pretrained Adaptive weights exist for images of size {adaptive.PRETRAINED_SIZE} "
                f"(C, H, W) only, not {image_size}; pass pretrained=False for other sizes."
            )
        table = partition.table(weights_dir)
    params = metric.init_params(config.colorspace, image_size)
    if pretrained and metric.weights_stem is not None:
        params = weights.load_pretrained(
            metric.weights_stem, config.colorspace, params, weights_dir, download=download
        )
    if metric.backbone is not None:
        backbone = weights.load_backbone(metric.backbone, weights_dir, download=download)
    return LoadedParameters(params, table, image_size, backbone)


class LossProvider:
    """Builds losses by name, like the reference's ``LossProvider``."""

    @staticmethod
    def available() -> list[str]:
        """The canonical names of the losses available in this version."""
        return registry.available_names()

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
        """Build a loss.

        Args:
          name: 'L1', 'L2', 'SSIM', 'Watson-DCT' ('Watson'), 'Watson-DFT' ('Watson-FFT'), 'Adaptive',
            'Deeploss-VGG', 'Deeploss-Squeeze'; case-insensitive.
          colorspace: 'RGB', or greyscale: 'LA', 'L', 'grey', 'gray', 'greyscale' (case-insensitive).
          reduction: 'none' → one distance per image (N,); 'sum' → their sum; 'mean' → their mean.
          deterministic: False (default) applies the Watson losses' random 8-pixel shift and needs a key.
          pretrained: load the converted 2AFC-tuned weights, else the initial parameters (Deeploss: heads
            of ones, the plain channel sum). Deeploss always needs its converted ImageNet backbone.
          image_size: (C, H, W) of the images, for the Adaptive loss, whose parameters are per dimension
            (default and pretrained: (3, 64, 64)); unused by the other losses.
          luminance: 'image' (each image's own mean luminance; no coupling between the images of a batch)
            or 'batch' (the reference's batch-wide mean).
          precision: 'highest' (default): convolutions and matrix products in full float32 on every backend;
            'default': the backend's faster default (e.g. TF32 on NVIDIA GPUs, bfloat16 passes on TPUs) for
            Deeploss's convolutions, for training. The Watson, SSIM and Adaptive transforms always request
            full precision.
          weights_dir: folder of converted weights; default ``$WATSON_JAX_WEIGHTS`` or
            ``~/.cache/watson_jax``.
          download: fetch, check (pinned sha256) and convert missing pretrained weights on first use
            (False, or ``$WATSON_JAX_OFFLINE=1``: never touch the network).
        """
        config = make_config(name, colorspace, reduction, deterministic, luminance, precision)
        loaded = load_parameters(
            config, pretrained=pretrained, image_size=image_size, weights_dir=weights_dir, download=download
        )
        constants = None
        if loaded.table is not None:
            constants = Constants({"log_partition": {k: loaded.table[k] for k in ("values", "tangents")}})
        frozen = None if loaded.backbone is None else jax.tree.map(jnp.asarray, loaded.backbone)
        return Loss(jax.tree.map(jnp.asarray, loaded.params), config, constants, frozen)
