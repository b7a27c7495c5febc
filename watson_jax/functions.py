"""The losses as typed pure functions, one per loss: the package's functional API.

Every function takes a batch of inputs ``x`` and targets ``y`` (NHWC float arrays, values in [0, 1], 1
(grey) or 3 (RGB) channels, the same shape) and returns one distance per image, shape (N,). The loss's
parameters (for the losses that have them) are an explicit pytree argument, so a function can be
differentiated with respect to the images and the parameters alike, tuned with optax, and used under
``jax.jit``, ``jax.vmap`` and sharding. ``params=None`` uses the untuned initial parameters of the
images' colour space (:func:`watson_jax.init_params`); pretrained ones come from
:func:`watson_jax.pretrained_params`. Randomness is always an explicit ``key``: a call that draws random
numbers (the Watson losses' random shift, tuning-mode dropout) and gets no key raises.

Bad arguments (rank, layout, dtype, channel count, sizes, parameters of the wrong colour space) raise
:class:`watson_jax.InputError` or :class:`watson_jax.OptionError` at trace time with the fix in the
message. The maths of each loss is stated in its docstring and in the module of its family under
:mod:`watson_jax.losses`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import blocks, partition
from .errors import InputError, OptionError
from .losses import adaptive as _adaptive
from .losses import deeploss as _deeploss
from .losses import pixel as _pixel
from .losses import ssim as _ssim
from .losses import watson as _watson
from .validation import check_images, check_key, check_shift, compute_dtype

__all__ = [
    "l1",
    "l2",
    "ssim",
    "watson_dct",
    "watson_dft",
    "adaptive",
    "deeploss_vgg",
    "deeploss_squeeze",
]

#: A loss's parameters: a nested dict of arrays with the reference's leaf names.
Params = dict
#: A shift offset (sx, sy) in {0..7}²: two ints, or an int array of shape (2,) (may be traced).
Shift = Sequence[int] | jax.Array

GREY_OR_RGB = (1, 3)
PRECISIONS = ("highest", "default")


def _images(x, y, name: str, *, blocks_: bool = False, min_size: int = 1) -> tuple[jax.Array, jax.Array]:
    """Checked images in the dtype the loss computes in (float32, or float64 if an input is)."""
    x, y = check_images(x, y, channels=GREY_OR_RGB, loss_name=name, blocks=blocks_, min_size=min_size)
    dtype = compute_dtype(x, y)
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype)


def _cast(params: Params, dtype) -> Params:
    return jax.tree.map(lambda p: jnp.asarray(p, dtype), params)


def _split(key, needed: bool, name: str, why: str) -> tuple:
    """(shift key, dropout key) from ``key`` when the call draws random numbers, else (None, None).

    The split is the same as :class:`watson_jax.LossProvider`'s losses make, so both give the same numbers
    for the same key."""
    if not needed:
        return None, None
    if key is None:
        raise OptionError(f"{name}: {why}, so the call needs a PRNG key: key=jax.random.key(0).")
    check_key(key)
    shift_key, dropout_key = jax.random.split(key)
    return shift_key, dropout_key


def matmul_precision(precision: str):
    """The context of a loss's convolutions and matrix products: 'highest' (full float32 on every backend)
    or 'default' (the caller's own setting or the backend's default)."""
    if precision not in PRECISIONS:
        raise OptionError(f"unknown precision {precision!r}; choose one of {PRECISIONS}.")
    return jax.default_matmul_precision("highest") if precision == "highest" else contextlib.nullcontext()


def _colorspace_of(x: jax.Array) -> str:
    return "rgb" if x.shape[-1] == 3 else "grey"


# -- parameter-free losses ---------------------------------------------------------------------------------


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
    """L1 distance Σ_{h,w,c} |x − y| of each image pair, (N,). The derivative of |·| at 0 is 0."""
    x, y = _images(x, y, "L1")
    return _pixel.l1_distance({}, x, y)


def l2(x: jax.Array, y: jax.Array) -> jax.Array:
    """L2 distance Σ_{h,w,c} (x − y)² of each image pair (the squared Euclidean norm), (N,)."""
    x, y = _images(x, y, "L2")
    return _pixel.l2_distance({}, x, y)


def ssim(x: jax.Array, y: jax.Array) -> jax.Array:
    """1 − SSIM of each image pair, (N,).

    SSIM = mean over pixels and channels of ((2 μx μy + C1)(2 σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))
    with local statistics under an 11×11 Gaussian window (σ = 1.5, zero padding, each channel on its
    own), C1 = 0.01², C2 = 0.03².
    """
    x, y = _images(x, y, "SSIM")
    return _ssim.distance({}, x, y)


# -- Watson ------------------------------------------------------------------------------------------------


def _watson_call(
    transform: str,
    name: str,
    x,
    y,
    params: Params | None,
    *,
    key,
    random_shift: bool,
    shift,
    luminance: str,
    tuning: bool,
    dft_implementation: str | None = None,
) -> jax.Array:
    x, y = _images(x, y, name, blocks_=True)
    if luminance not in ("image", "batch"):
        raise OptionError(f"unknown luminance mode {luminance!r}; choose 'image' or 'batch'.")
    colorspace = _colorspace_of(x)
    if params is None:
        params = _watson.init_params(transform, colorspace)
    elif ("ly" in params) != (colorspace == "rgb"):
        have = "RGB" if "ly" in params else "greyscale"
        raise InputError(
            f"{name}: these are {have} parameters but the images have {x.shape[-1]} channel(s); pass "
            "parameters of the images' colour space (watson_jax.init_params / pretrained_params with "
            "colorspace='RGB' or 'grey'), or convert the images with watson_jax.color.rgb_to_grey."
        )
    if shift is not None:
        check_shift(shift)
    dropout = tuning and transform == "dft"
    needs_shift_key = random_shift and shift is None
    why = "tuning mode draws a dropout mask" if dropout else "random_shift=True draws a random 8-pixel shift"
    shift_key, dropout_key = _split(key, needs_shift_key or dropout, name, why)
    if needs_shift_key:
        shift = blocks.random_offset(shift_key)
    return _watson.distance(
        _cast(params, x.dtype),
        x,
        y,
        transform=transform,
        luminance=luminance,
        tuning=tuning,
        key=dropout_key,
        shift=shift,
        dft_implementation=dft_implementation,
    )


def watson_dct(
    x: jax.Array,
    y: jax.Array,
    params: Params | None = None,
    *,
    key: jax.Array | None = None,
    random_shift: bool = False,
    shift: Shift | None = None,
    luminance: str = "image",
    tuning: bool = False,
) -> jax.Array:
    """Watson-DCT distance of each image pair, (N,): Watson's perceptual model on 8×8 block DCTs.

    Per channel (grey, or Y, Cb, Cr of RGB), with c0 the target's and c1 the input's block coefficients,
    T = exp(t_tild), w = sigmoid(w_tild), ε = 1e-10:

      t_L = T · ((c0_DC + ε)/(L̄ + ε))^α                         luminance masking
      s   = smoothmax(t_L, (|c0| + ε)^w · t_L^(1−w))             contrast masking
      d   = (|(c1 − c0)/s| + ε)^β                                per-coefficient error
      D_c = (Σ_{blocks,u,v} (d + ε))^(1/β)                       Minkowski pooling

    and D = Σ_c softmax(w_tild)_c · D_c for RGB. L̄ is the mean DC coefficient of the target over each
    image's blocks (``luminance='image'``) or over the whole batch (``'batch'``, the reference's coupling).

    Args:
      x: inputs, (N, H, W, C), C 1 or 3, H and W multiples of 8, values in [0, 1].
      y: targets (the masking reference), the same shape.
      params: ``{t_tild (8, 8), alpha, w_tild, beta}`` for grey, ``{w_tild (3,), ly, lcb, lcr}`` for RGB;
        None for the untuned initial values (Watson's 1993 table).
      key: PRNG key, needed when ``random_shift`` is on.
      random_shift: shift both images by a random offset (sx, sy) ∈ {0..7}² (edge-replicating; (4, 4) is
        no move) before cutting them into blocks, as the reference does in training.
      shift: an explicit offset instead of a random one.
      luminance: 'image' or 'batch' (above).
      tuning: accepted for a signature common with :func:`watson_dft`; Watson-DCT has no tuning-mode terms.
    """
    return _watson_call(
        "dct",
        "Watson-DCT",
        x,
        y,
        params,
        key=key,
        random_shift=random_shift,
        shift=shift,
        luminance=luminance,
        tuning=tuning,
    )


def watson_dft(
    x: jax.Array,
    y: jax.Array,
    params: Params | None = None,
    *,
    key: jax.Array | None = None,
    random_shift: bool = False,
    shift: Shift | None = None,
    luminance: str = "image",
    tuning: bool = False,
    dft_implementation: str | None = None,
) -> jax.Array:
    """Watson-DFT distance of each image pair, (N,): the paper's loss, Watson's model on 8×8 block DFTs.

    As :func:`watson_dct` on the amplitudes A = √((Re c + ε)² + (Im c + ε)²) of the one-sided block DFT
    (8×5 bins; target amplitudes A0 mask, the change is A1 − A0), plus a phase term per channel:

      D_c = (Σ (d·a + ε))^(1/β) + Σ_{blocks,u,v} w_φ · arccos((1 − 10⁻⁷)·cos(φ1 − φ0)) · q

    with w_φ = exp(w_phase_tild), zero on the four purely real bins (0,0), (0,4), (4,0), (4,4) except in
    tuning mode. In tuning mode (the reference's training mode) a dropout (p = ½, survivors × 2) acts on
    the per-coefficient amplitude and phase terms (the factors a and q; 1 otherwise), drawn from ``key``.

    Args:
      x, y, params, key, random_shift, shift, luminance: as :func:`watson_dct`; the parameters have
        ``w_phase_tild`` (8, 5) and an (8, 5) ``t_tild`` per channel.
      tuning: the reference's training mode (above); needs ``key``.
      dft_implementation: how the block DFT is evaluated ('butterflies' or 'fft'; None: the default of
        the backend, see :mod:`watson_jax.blocks`). Both give the same values to float32 noise.
    """
    return _watson_call(
        "dft",
        "Watson-DFT",
        x,
        y,
        params,
        key=key,
        random_shift=random_shift,
        shift=shift,
        luminance=luminance,
        tuning=tuning,
        dft_implementation=dft_implementation,
    )


# -- Adaptive ----------------------------------------------------------------------------------------------


def adaptive(
    x: jax.Array,
    y: jax.Array,
    params: Params | None = None,
    *,
    table: dict[str, np.ndarray] | None = None,
) -> jax.Array:
    """Adaptive distance of each image pair, (N,): Barron's general robust loss as a negative
    log-likelihood of the difference's coefficients.

    With v the coefficients of the difference x − y in the reference's representation (a YUV colour
    step, scale 1.5802, followed by orthonormal DCTs along H and along the channel axis, applied to the
    NCHW memory order exactly as the reference does: :mod:`watson_jax.losses.adaptive`; grey images are
    replicated to 3 channels), and per coefficient i a shape α_i ∈ (0.001, 1.999) and a scale c_i > 10⁻⁵
    from the latents:

      NLL_i = ρ(v_i, α_i, c_i) + log c_i + log Z(α_i),   ρ = |α−2|/α · (((v/c)²/|α−2| + 1)^(α/2) − 1)

    and D = Σ_i NLL_i (it can be negative). log Z is read from Barron's spline table.

    Args:
      x, y: (N, H, W, C) images, C 1 or 3, values in [0, 1].
      params: ``{latent_alpha, latent_scale}``, each (1, 3·H·W) (the parameters are per coefficient, so
        they fix the image size); None for the untrained α = 1, c = 1 of the images' size.
      table: the log-partition table (:func:`watson_jax.log_partition_table`); None reads or computes it
        once (see :mod:`watson_jax.partition`).
    """
    x, y = _images(x, y, "Adaptive")
    if params is None:
        params = _adaptive.init_params("rgb", (3, x.shape[1], x.shape[2]))
    if table is None:
        table = partition.table()
    return _adaptive.distance(_cast(params, x.dtype), x, y, table=table)


# -- Deeploss ----------------------------------------------------------------------------------------------


def _deeploss_call(metric: str, x, y, params, *, backbone, key, tuning: bool, precision: str) -> jax.Array:
    spec = _deeploss.BACKBONES[metric]
    x, y = _images(x, y, metric, min_size=spec.min_size)
    if backbone is None:
        raise OptionError(
            f"{metric} needs its ImageNet backbone: backbone=watson_jax.load_backbone({metric!r}) (the "
            "torchvision checkpoint converted with `watson-jax convert`)."
        )
    if params is None:
        params = _deeploss.init_params(metric)
    _, dropout_key = _split(key, tuning, metric, "tuning mode draws a dropout mask")
    frozen = jax.tree.map(lambda a: jax.lax.stop_gradient(jnp.asarray(a, x.dtype)), backbone)
    with matmul_precision(precision):
        return _deeploss.distance(
            _cast(params, x.dtype), x, y, metric=metric, backbone=frozen, tuning=tuning, key=dropout_key
        )


def deeploss_vgg(
    x: jax.Array,
    y: jax.Array,
    params: Params | None = None,
    *,
    backbone: dict,
    key: jax.Array | None = None,
    tuning: bool = False,
    precision: str = "highest",
) -> jax.Array:
    """Deeploss-VGG distance of each image pair, (N,): LPIPS ("lin", v0.1) on VGG16's features.

    Images are scaled with LPIPS's shift and scale ((x − shift)/scale per RGB channel; grey replicated to
    3 channels), both go through the frozen backbone, and at each tap l (after relu1_2, relu2_2, relu3_3,
    relu4_3, relu5_3) with unit-normalised features f̂ = f / (‖f‖_channels + 10⁻¹⁰):

      D = Σ_l mean_{h,w} Σ_c w_{l,c} · (f̂_x − f̂_y)²_{h,w,c}

    The heads w_l (``lin0``…``lin4``) are the parameters; untuned heads are all ones (the plain channel
    sum). In tuning mode a dropout (p = ½, × 2) acts on the heads' inputs, drawn from ``key``. The
    backbone is never differentiated (stop_gradient). H, W ≥ 16.

    Args:
      x, y: (N, H, W, C) images, C 1 or 3, values in [0, 1].
      params: the heads; None for ones.
      backbone: VGG16's convolution parameters (:func:`watson_jax.load_backbone`).
      key: PRNG key for tuning mode.
      tuning: the reference's training mode (dropout); needs ``key``.
      precision: 'highest' (full float32 convolutions on every backend) or 'default' (the backend's
        faster default, e.g. TF32 on NVIDIA GPUs).
    """
    return _deeploss_call(
        "Deeploss-VGG", x, y, params, backbone=backbone, key=key, tuning=tuning, precision=precision
    )


def deeploss_squeeze(
    x: jax.Array,
    y: jax.Array,
    params: Params | None = None,
    *,
    backbone: dict,
    key: jax.Array | None = None,
    tuning: bool = False,
    precision: str = "highest",
) -> jax.Array:
    """Deeploss-Squeeze distance of each image pair, (N,): LPIPS ("lin", v0.1) on SqueezeNet 1.1.

    As :func:`deeploss_vgg`, with seven taps of SqueezeNet 1.1 (heads ``lin0``…``lin6``) and H, W ≥ 17.
    """
    return _deeploss_call(
        "Deeploss-Squeeze", x, y, params, backbone=backbone, key=key, tuning=tuning, precision=precision
    )
