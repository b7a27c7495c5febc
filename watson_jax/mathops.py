"""Elementwise helpers shared by the losses: derivatives that match the reference at its kinks, dropout."""

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
    1/2, of ``shape`` and ``dtype``, drawn from ``key``."""
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), jnp.asarray(2, dtype), jnp.asarray(0, dtype))
