"""Adaptive: Barron's robust loss as a negative log-likelihood on a YUV/DCT representation
(docs/reference.md §7).

Reproduces the reference exactly, including how it hands NCHW images to code written for NHWC (the
shipped weights belong to that behaviour). For each image, with d = x − y in NCHW memory order:

1. colour step: the C·H·W values taken as rows of 3 consecutive values (so neighbouring pixels of one
   channel, not the three channels of a pixel), each row r → 1.580227820074 · r K, with
   K = [[0.299, −0.14714119, 0.61497538], [0.587, −0.28886916, −0.51496512],
   [0.114, 0.43601035, −0.10001026]];
2. transform step: an orthonormal DCT-II along H, then along C (length 3); nothing along W;
3. per dimension (C·H·W of them) α = sigmoid(latent_alpha)·(1.999 − 0.001) + 0.001 and
   scale = (1 − 1e-5)·softplus(latent_scale + log(e − 1)) + 1e-5;
4. NLL = ρ(v, α, scale) + log(scale) + log Z(α), with z = (v/scale)², b = max(ε, |α − 2|),
   a = sign⁺(α)·max(ε, |α|), ε = 1.1920929e-07, ρ = (b/a)·((z/b + 1)^(α/2) − 1), and log Z from
   :mod:`watson_jax.partition`.
The distance of an image is the sum of its NLL terms (which can be negative; identical images do not give 0).
Greyscale images are replicated to 3 channels first.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import partition
from ..constants import ADAPTIVE_EPS as EPS
from ..constants import ALPHA_HI, ALPHA_LO, PRETRAINED_SIZE, SCALE_LO, YUV_MATRIX, YUV_SCALE
from ..errors import InputError


def normalise_image_size(image_size) -> tuple[int, int, int]:
    """(C, H, W) with C 1 or 3 (always 3 internally), default the pretrained 3×64×64."""
    if image_size is None:
        return PRETRAINED_SIZE
    size = tuple(int(s) for s in image_size)
    if len(size) != 3 or size[0] not in (1, 3) or min(size) < 1:
        raise InputError(f"image_size must be (C, H, W) with C 1 or 3, got {image_size!r}.")
    return (3, size[1], size[2])


def init_params(colorspace: str, image_size=None) -> dict:
    """Untrained latents (α = 1, scale = 1), shape (1, 3·H·W), as the reference initialises them.

    The reference computes latent_alpha = logit((1 − 0.001)/(1.999 − 0.001)) in float32, 2.38e-7 rather
    than 0; reproduced so that the untrained values match to the last bit.
    """
    del colorspace
    size = int(np.prod(normalise_image_size(image_size)))
    f32 = np.float32
    p = (f32(1.0) - f32(ALPHA_LO)) / (f32(ALPHA_HI) - f32(ALPHA_LO))
    latent_alpha = np.log(p / (f32(1) - p)).astype(np.float32)
    return {
        "latent_alpha": np.full((1, size), latent_alpha, np.float32),
        "latent_scale": np.zeros((1, size), np.float32),
    }


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix of length n: D[k, i] = √(2/n)·c_k·cos(π(2i + 1)k/(2n)), c_0 = 1/√2."""
    i = np.arange(n)
    k = i[:, None]
    c = np.where(k == 0, 1 / np.sqrt(2), 1.0)
    return np.sqrt(2 / n) * c * np.cos(np.pi * (2 * i[None, :] + 1) * k / (2 * n))


@functools.cache
def _colour_dct_matrix(c: int, h: int) -> np.ndarray:
    """The DCT along C and the DCT along H as one (C·H) × (C·H) matrix, D_C ⊗ D_H."""
    return np.kron(_dct_matrix(c), _dct_matrix(h))


def representation(d: jax.Array) -> jax.Array:
    """Steps 1–2 on NHWC differences with 3 channels → (N, 3, H, W) coefficients (NCHW memory order).

    Both steps are matrix products, so that the gradient is matrix products too: the colour step a
    (rows of 3) × (3 × 3) product, the two DCTs one product with D_C ⊗ D_H over the (C, H) axes."""
    n, h, w, c = d.shape
    rows = jnp.transpose(d, (0, 3, 1, 2)).reshape(n, -1, 3)
    colour = jnp.asarray(np.asarray(YUV_MATRIX, np.float64) * YUV_SCALE, d.dtype)
    yuv = jnp.einsum("nmi,ij->nmj", rows, colour, precision=jax.lax.Precision.HIGHEST)
    dct = jnp.asarray(_colour_dct_matrix(c, h), d.dtype)
    out = jnp.einsum("KC,nCw->nKw", dct, yuv.reshape(n, c * h, w), precision=jax.lax.Precision.HIGHEST)
    return out.reshape(n, c, h, w)


def alpha_and_scale(params: dict) -> tuple[jax.Array, jax.Array]:
    """The bounded per-dimension shape α ∈ (0.001, 1.999) and scale > 1e-5 from the latents."""
    alpha = jax.nn.sigmoid(params["latent_alpha"]) * (ALPHA_HI - ALPHA_LO) + ALPHA_LO
    scale = (1 - SCALE_LO) * jax.nn.softplus(params["latent_scale"] + np.log(np.e - 1)) + SCALE_LO
    return alpha, scale


def rho(v, alpha, scale):
    """Barron's general loss ρ(v, α, scale) for α in (0, 2), as the reference computes it."""
    z = jnp.square(v / scale)
    b = jnp.maximum(EPS, jnp.abs(alpha - 2))
    a = jnp.where(alpha >= 0, 1.0, -1.0) * jnp.maximum(EPS, jnp.abs(alpha))
    # u^(α/2) as exp(α/2 · log u), u = z/b + 1 ≥ 1: the same value to a few ulp, and XLA's CPU code for a
    # power with a non-constant exponent (and its derivative) is about twice as slow.
    return (b / a) * (jnp.exp(0.5 * alpha * jnp.log(z / b + 1)) - 1)


def nll_map(params: dict, x: jax.Array, y: jax.Array, *, table: dict) -> jax.Array:
    """The elementwise NLL of NHWC images (grey replicated to 3 channels), returned NHWC (N, H, W, 3)."""
    if x.shape[-1] == 1:
        x, y = jnp.repeat(x, 3, axis=-1), jnp.repeat(y, 3, axis=-1)
    n, h, w, c = x.shape
    size = params["latent_alpha"].shape[-1]
    if c * h * w != size:
        raise InputError(
            f"this Adaptive loss was built for image_size with 3·H·W = {size} values, but the images are "
            f"{h}×{w}; build it with image_size=(3, {h}, {w}) (pretrained=False: the shipped weights exist "
            f"for 3×64×64 only)."
        )
    v = representation(x - y).reshape(n, size)
    alpha, scale = alpha_and_scale(params)
    log_z = partition.log_partition(
        alpha, jnp.asarray(table["values"], x.dtype), jnp.asarray(table["tangents"], x.dtype)
    )
    nll = rho(v, alpha, scale) + jnp.log(scale) + log_z
    return jnp.transpose(nll.reshape(n, c, h, w), (0, 2, 3, 1))


def distance(params: dict, x: jax.Array, y: jax.Array, *, table: dict) -> jax.Array:
    """Σ of the NLL terms of each image, (N,)."""
    return jnp.sum(nll_map(params, x, y, table=table), axis=(1, 2, 3))
