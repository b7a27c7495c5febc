"""Pixel losses (docs/reference.md §1): L1 = Σ |x − y| and L2 = Σ (x − y)² over each image's elements."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..mathops import abs_


def init_params() -> dict:
    """Pixel losses have no parameters."""
    return {}


def l1_map(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """|x − y| elementwise; the derivative of |·| at 0 is 0."""
    del params
    return abs_(x - y)


def l2_map(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """(x − y)² elementwise."""
    del params
    return jnp.square(x - y)


def l1_distance(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Σ_{h,w,c} |x − y| per image, NHWC → (N,)."""
    return jnp.sum(l1_map(params, x, y), axis=(1, 2, 3))


def l2_distance(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Σ_{h,w,c} (x − y)² per image, NHWC → (N,)."""
    return jnp.sum(l2_map(params, x, y), axis=(1, 2, 3))
