"""Elementwise helpers shared by the losses: derivatives that match the reference at its kinks, dropout."""

import math

import jax
import jax.numpy as jnp


def abs_(x: jax.Array) -> jax.Array:
    """|x| whose derivative at 0 is 0 (PyTorch's convention; ``jnp.abs`` uses 1 there).

    Written as x · sign(x) with the sign held constant, so the derivative is sign(x) everywhere. This is
    what makes the Watson and L1 gradients exactly zero where input and target agree.
    """
    return x * jax.lax.stop_gradient(jnp.sign(x))


def reciprocal_or_zero(a: jax.Array) -> jax.Array:
    """1/a where a > 0, else 0, with finite derivatives everywhere."""
    positive = a > 0
    return jnp.where(positive, 1 / jnp.where(positive, a, 1), 0)


def dropout_scale(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype) -> jax.Array:
    """Tuning mode's dropout (p = 1/2, survivors scaled by 2) as a factor: 0 or 2, each with probability
    1/2 and independently, of ``shape`` and ``dtype``, drawn from ``key``.

    Each element takes one bit of ``jax.random.bits(key, (⌈n/32⌉,), uint32)``: element i is bit i mod 32
    of word ⌊i/32⌋ (row-major order), and the bits of a counter-based generator are independent and
    uniform. One random word per 32 elements, where ``jax.random.bernoulli`` spends a word on each.
    """
    size = math.prod(shape)
    words = jax.random.bits(key, (-(-size // 32),), jnp.uint32)
    bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & 1
    return (bits.reshape(-1)[:size].astype(dtype) * 2).reshape(shape)
