"""watson_jax.mathops.dropout_scale: tuning mode's dropout factor, one random bit per element."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from watson_jax.mathops import dropout_scale


@pytest.mark.parametrize("shape", [(50, 64, 3, 8, 5), (7,), (3, 33)])
def test_values_shape_and_balance(shape):
    s = np.asarray(dropout_scale(jax.random.key(0), shape, jnp.float32))
    assert s.shape == shape and s.dtype == np.float32
    assert set(np.unique(s)) <= {0.0, 2.0}
    n = s.size
    if n >= 1000:  # the count of survivors is Binomial(n, 1/2): within 5 standard deviations
        assert abs((s == 2).sum() - n / 2) < 5 * np.sqrt(n / 4)


def test_bits_are_independent_across_words_and_positions():
    """Survivors are Bernoulli(1/2) at every bit position and uncorrelated with their neighbours (the
    first element of each word against the last of the previous one, too)."""
    s = np.asarray(dropout_scale(jax.random.key(3), (4096, 32), jnp.float32)) / 2  # one word per row
    n = s.shape[0]
    per_position = s.mean(axis=0)
    assert np.all(np.abs(per_position - 0.5) < 5 * np.sqrt(0.25 / n)), per_position
    flat = s.ravel() - 0.5
    lag1 = np.mean(flat[1:] * flat[:-1]) / 0.25
    across_words = np.mean((s[1:, 0] - 0.5) * (s[:-1, -1] - 0.5)) / 0.25
    assert abs(lag1) < 5 / np.sqrt(flat.size) and abs(across_words) < 5 / np.sqrt(n)


def test_keys_decide_the_mask():
    a = dropout_scale(jax.random.key(1), (64, 40), jnp.float32)
    b = dropout_scale(jax.random.key(1), (64, 40), jnp.float32)
    c = dropout_scale(jax.random.key(2), (64, 40), jnp.float32)
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.asarray(a) != np.asarray(c)) > 0.4  # independent masks differ in about half
    # under vmap each key gives the mask it gives alone
    keys = jax.random.split(jax.random.key(4), 3)
    batched = jax.vmap(lambda k: dropout_scale(k, (5, 7), jnp.float32))(keys)
    for k, row in zip(keys, batched):
        np.testing.assert_array_equal(row, dropout_scale(k, (5, 7), jnp.float32))
