"""Deeploss-VGG and Deeploss-Squeeze: the LPIPS "lin" distance (version 0.1) on ImageNet backbones
(docs/reference.md §8).

For an image pair (x, y), each mapped channelwise to (x − shift)/scale with the LPIPS constants (applied to
the [0, 1] images unchanged, as the tuned heads expect), and the backbone's feature taps f_l (after the ReLU
that ends each slice):

  n_l   = f_l / (√(Σ_c f_l²) + ε)                          unit feature vectors, per pixel, ε = 1e-10
  m_l   = Σ_c w_{l,c} (n_l(x) − n_l(y))²                    the head: a 1×1 convolution C → 1, no bias
  D     = Σ_l mean_{h,w} m_l                                one value per image

Greyscale images are replicated to three channels first. The backbones are pure functions of a parameter
pytree {layer name: {'kernel': HWIO, 'bias': (O,)}} in NHWC, named after torchvision's ``features.<i>``
modules; their ImageNet weights come from torchvision checkpoints through ``convert_weights.py``.

Gradients: √ has an infinite derivative at 0, reached wherever all channels of a tap are 0 (dead ReLUs,
black or constant images). The square root is taken only where Σf² > 0 (of a placeholder 1 elsewhere,
so that its derivative stays finite) and the norm is 0 elsewhere: values are unchanged, and the gradient
there is the exact derivative of f/(0 + ε), which is finite. (Every tap here is a ReLU output, and the
ReLU's gradient mask would also drop the 0·∞ that the unguarded root produces there; the guard makes the
normalisation safe by itself, whatever precedes it.)

Tuning mode (the reference's training mode, used for 2AFC tuning) applies dropout (p = 0.5, survivors
scaled by 2) to the squared differences before each head, as LPIPS's heads do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..constants import DEEPLOSS_EPS as EPS
from ..constants import LPIPS_SCALE, LPIPS_SHIFT
from ..constants import SQUEEZE_FIRES as _SQUEEZE_FIRES
from ..constants import SQUEEZE_SLICES as _SQUEEZE_SLICES
from ..constants import VGG16_CONVS as _VGG16_SLICES
from ..mathops import dropout_scale

# -- layers ------------------------------------------------------------------------------------------


def conv(p: dict, x: jax.Array, *, stride: int = 1, padding: int = 0) -> jax.Array:
    """2-D convolution + bias, NHWC input, HWIO kernel (precision from the surrounding
    ``jax.default_matmul_precision``, which the loss sets)."""
    y = jax.lax.conv_general_dilated(
        x,
        p["kernel"].astype(x.dtype),
        (stride, stride),
        ((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + p["bias"].astype(x.dtype)


def conv_relu(p: dict, x: jax.Array, **kwargs) -> jax.Array:
    return jax.nn.relu(conv(p, x, **kwargs))


def _pooled_size(n: int, window: int, stride: int, ceil_mode: bool) -> int:
    """PyTorch's MaxPool2d output size (no padding); in ceil mode a window must start inside the input."""
    if not ceil_mode:
        return (n - window) // stride + 1
    out = -(-(n - window) // stride) + 1
    return out - 1 if (out - 1) * stride >= n else out


def max_pool(x: jax.Array, window: int, stride: int, *, ceil_mode: bool = False) -> jax.Array:
    """Max-pooling over H and W; ceil mode pads the bottom and right edges with −∞ as PyTorch does."""
    _, h, w, _ = x.shape
    pads = [(0, 0)]
    for n in (h, w):
        out = _pooled_size(n, window, stride, ceil_mode)
        pads.append((0, max(0, (out - 1) * stride + window - n)))
    pads.append((0, 0))
    return jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), pads
    )


def fire(p: dict, name: str, x: jax.Array) -> jax.Array:
    """SqueezeNet's Fire module: squeeze 1×1 + ReLU, then [ReLU(expand 1×1), ReLU(expand 3×3, pad 1)]."""
    s = conv_relu(p[f"{name}.squeeze"], x)
    return jnp.concatenate(
        [conv_relu(p[f"{name}.expand1x1"], s), conv_relu(p[f"{name}.expand3x3"], s, padding=1)],
        axis=-1,
    )


# -- backbones ---------------------------------------------------------------------------------------


def _vgg16_layout() -> dict[str, tuple[int, ...]]:
    return {f"features.{i}": (3, 3, cin, cout) for convs in _VGG16_SLICES for i, cin, cout in convs}


def _squeezenet_layout() -> dict[str, tuple[int, ...]]:
    layout = {"features.0": (3, 3, 3, 64)}
    for i, cin, sq, e1, e3 in _SQUEEZE_FIRES:
        layout[f"features.{i}.squeeze"] = (1, 1, cin, sq)
        layout[f"features.{i}.expand1x1"] = (1, 1, sq, e1)
        layout[f"features.{i}.expand3x3"] = (3, 3, sq, e3)
    return layout


def vgg16_features(p: dict, x: jax.Array) -> list[jax.Array]:
    """The five VGG16 taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of NHWC images."""
    taps = []
    for k, convs in enumerate(_VGG16_SLICES):
        if k > 0:
            x = max_pool(x, 2, 2)
        for i, _, _ in convs:
            x = conv_relu(p[f"features.{i}"], x, padding=1)
        taps.append(x)
    return taps


def squeezenet1_1_features(p: dict, x: jax.Array) -> list[jax.Array]:
    """The seven SqueezeNet 1.1 taps of NHWC images (64, 128, 256, 384, 384, 512, 512 channels)."""
    x = conv_relu(p["features.0"], x, stride=2)
    taps = [x]
    for fires, pool_first in _SQUEEZE_SLICES:
        if pool_first:
            x = max_pool(x, 3, 2, ceil_mode=True)
        for i in fires:
            x = fire(p, f"features.{i}", x)
        taps.append(x)
    return taps


@dataclasses.dataclass(frozen=True)
class Backbone:
    """An ImageNet feature extractor: its layers, its taps and the torchvision checkpoints it comes from.

    Attributes:
      name: file stem of the converted backbone, '<name>_backbone.npz'.
      metric: the loss that uses it.
      torchvision_files: the checkpoint file names torchvision downloads (their names carry the first
        8 hex digits of the file's sha256, as torch hub checks them).
      layout: layer name (torchvision's ``features.<i>[.<part>]``) → HWIO kernel shape.
      channels: channels of each tap.
      features: (backbone params, NHWC images) → list of taps.
      min_size: the smallest H and W it takes (every pooling stage needs at least one pixel).
    """

    name: str
    metric: str
    torchvision_files: tuple[str, ...]
    layout: dict
    channels: tuple[int, ...]
    features: Callable
    min_size: int

    def template(self) -> dict:
        """A parameter pytree of the right shapes (zero-cost read-only zeros), to check converted files."""
        zeros = lambda shape: np.broadcast_to(np.float32(0), shape)  # noqa: E731
        return {
            name: {"kernel": zeros(shape), "bias": zeros(shape[-1:])} for name, shape in self.layout.items()
        }

    @property
    def filename(self) -> str:
        return f"{self.name}_backbone.npz"


BACKBONES = {
    "Deeploss-VGG": Backbone(
        "vgg16",
        "Deeploss-VGG",
        ("vgg16-397923af.pth",),
        _vgg16_layout(),
        (64, 128, 256, 512, 512),
        vgg16_features,
        min_size=16,
    ),
    "Deeploss-Squeeze": Backbone(
        "squeezenet1_1",
        "Deeploss-Squeeze",
        ("squeezenet1_1-b8a52dc0.pth", "squeezenet1_1-f364aa15.pth"),
        _squeezenet_layout(),
        (64, 128, 256, 384, 384, 512, 512),
        squeezenet1_1_features,
        min_size=17,
    ),
}


# -- the distance --------------------------------------------------------------------------------------


def init_params(metric: str, colorspace: str = "rgb") -> dict:
    """Untuned heads: every weight 1, i.e. the plain sum over channels (LPIPS's untuned baseline).

    The reference draws random heads instead; ones make the untuned loss deterministic and non-negative.
    """
    del colorspace
    return {f"lin{k}": np.ones(c, np.float32) for k, c in enumerate(BACKBONES[metric].channels)}


def unit_normalise(f: jax.Array) -> jax.Array:
    """f / (√(Σ_c f²) + ε) over the last axis, with a finite gradient where Σ_c f² = 0 (module docstring)."""
    squares = jnp.sum(f * f, axis=-1, keepdims=True)
    positive = squares > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1)), 0)
    return f / (norm + EPS)


def scaled_rgb(x: jax.Array) -> jax.Array:
    """The backbones' input: NHWC images in [0, 1] (1 channel repeated to 3) as (x − shift) / scale with
    LPIPS's per-channel constants (constants.LPIPS_SHIFT, LPIPS_SCALE)."""
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    # XLA turns a division by a broadcast into a multiplication by its reciprocal: two roundings, which
    # the backbone amplifies (float32 taps 1.5× PyTorch's error from float64, input gradients 1.6×, and
    # more max-pool flips). Behind the barrier the divisor is an opaque array, so the division stays one
    # correctly rounded operation, as in PyTorch; it costs one input-sized array.
    scale = jax.lax.optimization_barrier(jnp.broadcast_to(jnp.asarray(LPIPS_SCALE, x.dtype), x.shape))
    return (x - jnp.asarray(LPIPS_SHIFT, x.dtype)) / scale


def layer_maps(
    params: dict,
    x: jax.Array,
    y: jax.Array,
    *,
    metric: str,
    backbone: dict,
    tuning: bool = False,
    key=None,
) -> list[jax.Array]:
    """m_l of every tap, (N, h_l, w_l) each; x and y NHWC with 1 or 3 channels. ``tuning``: dropout on the
    heads' inputs, drawn from ``key``."""
    # Two backbone calls rather than one on the concatenated batch: when only x is differentiated (a
    # generator's output against fixed targets), y's activations are then not kept for the backward pass,
    # which halves the memory of a training step.
    features = BACKBONES[metric].features
    taps = list(zip(features(backbone, scaled_rgb(x)), features(backbone, scaled_rgb(y))))
    keys = jax.random.split(key, len(taps)) if tuning else [None] * len(taps)
    maps = []
    for k, ((fx, fy), tap_key) in enumerate(zip(taps, keys)):
        diff = jnp.square(unit_normalise(fx) - unit_normalise(fy))
        if tuning:
            diff = diff * dropout_scale(tap_key, diff.shape, diff.dtype)
        maps.append(jnp.einsum("nhwc,c->nhw", diff, params[f"lin{k}"].astype(diff.dtype)))
    return maps


def distance(
    params: dict,
    x: jax.Array,
    y: jax.Array,
    *,
    metric: str,
    backbone: dict,
    tuning: bool = False,
    key=None,
) -> jax.Array:
    """D of each image pair, (N,)."""
    maps = layer_maps(params, x, y, metric=metric, backbone=backbone, tuning=tuning, key=key)
    return sum(jnp.mean(m, axis=(1, 2)) for m in maps)


def distance_map(params: dict, x: jax.Array, y: jax.Array, *, metric: str, backbone: dict) -> jax.Array:
    """Σ_l upsample(m_l) / (H·W), (N, H, W): each layer's map upsampled bilinearly (half-pixel centres,
    like LPIPS's spatial mode) to the input size. Its sum over pixels approximates D (exactly for taps at
    full resolution; the interpolation moves the others slightly: 3e-4 relative for 64×64 images)."""
    n, h, w, _ = x.shape
    total = 0
    for m in layer_maps(params, x, y, metric=metric, backbone=backbone):
        total = total + jax.image.resize(m, (n, h, w), "bilinear")
    return total / (h * w)
