"""Adaptive (Barron's robust loss, docs/reference.md §7): the library's own log-partition table, parity with
../shared/golden/adaptive_*.npz (values, maps, gradients; pretrained and initial; float64), jit/vmap/grad,
finite gradients, and the image-size rules.

Tolerances (golden README): values rtol 1e-5; maps and gradients max |Δ| ≤ 1e-5·max |ref|; float64 rtol 1e-6.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    check_adaptive_float64_map_and_gradient,
    forward,
    load_golden,
    nchw,
    nhwc,
    original_weights,
    value_and_grad,
)

from watson_jax import InputError, LossProvider, OptionError, partition

PROVIDER = LossProvider()
FILES = ["adaptive_rgb", "adaptive_la", "adaptive_rgb_48x80", "adaptive_la_48x80"]


@pytest.fixture(scope="module")
def computed_table():
    """The table the library computes by integration and minimax fitting (~25 s, once)."""
    return partition.compute_table()


def test_computed_table_agrees_with_barrons_at_every_knot(computed_table):
    with np.load(original_weights("partition_spline.npz")) as original:
        assert int(original["x_scale"]) == int(computed_table["x_scale"])
        np.testing.assert_allclose(computed_table["values"], original["values"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(computed_table["tangents"], original["tangents"], rtol=0, atol=1e-6)
    # Closed forms: Z(0) = π√2 (a Cauchy-like density), Z(2) = √(2π) (a Gaussian).
    assert computed_table["values"][0] == pytest.approx(np.log(np.pi * np.sqrt(2)), abs=1e-6)
    assert computed_table["values"][4 * 1024] == pytest.approx(0.5 * np.log(2 * np.pi), abs=1e-6)


def test_table_is_computed_once_and_cached_in_the_weights_folder(computed_table, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(partition, "compute_table", lambda: calls.append(1) or computed_table)
    PROVIDER.get_loss_function("Adaptive", pretrained=False, weights_dir=tmp_path)
    PROVIDER.get_loss_function("Adaptive", pretrained=False, weights_dir=tmp_path)
    assert calls == [1]
    saved = partition.read_table(tmp_path / partition.TABLE_FILE)
    np.testing.assert_array_equal(saved["values"], computed_table["values"])
    partition._cached_table.cache_clear()  # a new process: read from disk, not recomputed
    PROVIDER.get_loss_function("Adaptive", pretrained=False, weights_dir=tmp_path)
    assert calls == [1]


def build(golden, pretrained, weights_dir, reduction="sum"):
    return PROVIDER.get_loss_function(
        "Adaptive",
        str(golden["colorspace"]),
        reduction=reduction,
        pretrained=pretrained,
        image_size=tuple(golden["image_size"]),
        weights_dir=weights_dir,
    )


def settings(golden):
    return [("", True)] * bool(golden["pretrained_available"]) + [("_init", False)]


def assert_close_to_max(got, want, rel=1e-5):
    assert np.max(np.abs(np.asarray(got, np.float64) - want)) <= rel * np.max(np.abs(want))


@pytest.mark.parametrize("name", FILES)
def test_parity_float32(name, converted_weights):
    g = load_golden(name)
    x, y = nhwc(g["input"]), nhwc(g["target"])
    for suffix, pretrained in settings(g):
        loss = build(g, pretrained, converted_weights)
        value, grad = value_and_grad(loss, x, y)
        np.testing.assert_allclose(value, g[f"value_sum{suffix}"], rtol=1e-5)
        assert_close_to_max(nchw(grad), g[f"grad_input{suffix}"])
        nll = loss(x, y, elementwise=True)
        assert nll.shape == (len(x), x.shape[1], x.shape[2], 3)
        assert_close_to_max(nchw(nll), g[f"value_none{suffix}"])
        per_image = forward(build(g, pretrained, converted_weights, reduction="none"), x, y)
        np.testing.assert_allclose(per_image, g[f"value_none_sum_hw{suffix}"].sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("name", FILES)
def test_parity_float64(name, converted_weights):
    g = load_golden(name)
    with jax.enable_x64(True):
        x, y = (
            jnp.asarray(nhwc(g["input"]), jnp.float64),
            jnp.asarray(nhwc(g["target"]), jnp.float64),
        )
        for suffix, pretrained in settings(g):
            loss = build(g, pretrained, converted_weights)
            value, grad = value_and_grad(loss, x, y)
            assert value.dtype == grad.dtype == jnp.float64
            np.testing.assert_allclose(value, g[f"value_sum{suffix}_f64"], rtol=1e-6)
            nll = loss(x, y, elementwise=True)
            assert nll.dtype == jnp.float64
            zero = jnp.full_like(x[:1], 0.25)
            nll_at_zero = loss(zero, zero, elementwise=True)
            check_adaptive_float64_map_and_gradient(g, suffix, nchw(nll), nchw(grad), nchw(nll_at_zero))


def test_jit_vmap_grad(converted_weights):
    g = load_golden("adaptive_rgb")
    x, y = nhwc(g["input"]), nhwc(g["target"])
    loss = build(g, True, converted_weights, reduction="none")
    batched = forward(loss, x, y)
    single = jax.vmap(lambda a, b: loss(a[None], b[None])[0])(x, y)
    np.testing.assert_allclose(single, batched, rtol=1e-5)
    np.testing.assert_allclose(loss(x, y), batched, rtol=1e-5)
    grads = jax.grad(lambda p: loss.apply(p, x, y).sum())(loss.params)
    assert all(np.all(np.isfinite(v)) and np.any(v != 0) for v in jax.tree.leaves(grads))


@pytest.mark.parametrize("colorspace", ["RGB", "LA"])
def test_gradients_are_finite_at_x_equals_y_and_extreme_differences(colorspace, converted_weights):
    channels = 3 if colorspace == "RGB" else 1
    rng = np.random.default_rng(0)
    tex = rng.uniform(size=(64, 64, channels)).astype(np.float32)
    ones, zeros = np.ones_like(tex), np.zeros_like(tex)
    x = np.stack([tex, ones, zeros, ones, tex])
    y = np.stack([tex, zeros, ones, ones, tex[::-1]])  # x == y, differences of +1 and −1, equal
    loss = PROVIDER.get_loss_function("Adaptive", colorspace, weights_dir=converted_weights)
    gx, gy = jax.jit(jax.grad(lambda a, b: loss(a, b), argnums=(0, 1)))(x, y)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    assert np.all(np.asarray(gx)[[0, 3]] == 0)  # the NLL is even: zero gradient at x == y


def test_pretrained_weights_exist_for_64x64_only(converted_weights):
    with pytest.raises(
        OptionError,
        match=r"pretrained Adaptive weights exist for .*\(3, 64, 64\).*pretrained=False",
    ):
        PROVIDER.get_loss_function("Adaptive", image_size=(3, 48, 80), weights_dir=converted_weights)
    loss = PROVIDER.get_loss_function(
        "Adaptive", image_size=(3, 48, 80), pretrained=False, weights_dir=converted_weights
    )
    assert loss.params["latent_alpha"].shape == (1, 3 * 48 * 80)


def test_images_of_another_size_than_image_size(converted_weights):
    loss = PROVIDER.get_loss_function("Adaptive", weights_dir=converted_weights)
    x = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(InputError, match=r"built for image_size.*image_size=\(3, 32, 32\)"):
        loss(x, x)
    with pytest.raises(InputError, match="image_size must be"):
        PROVIDER.get_loss_function("Adaptive", image_size=(64, 64), weights_dir=converted_weights)


def test_untrained_parameters_are_alpha_1_scale_1(converted_weights):
    from watson_jax.losses import adaptive

    loss = PROVIDER.get_loss_function("Adaptive", pretrained=False, weights_dir=converted_weights)
    alpha, scale = adaptive.alpha_and_scale(loss.params)
    np.testing.assert_allclose(alpha, 1.0, atol=1e-6)
    np.testing.assert_allclose(scale, 1.0, atol=1e-6)


def test_the_table_is_a_constant_not_a_parameter(converted_weights):
    """Only the latents are leaves of the loss pytree: gradients and optimiser updates never touch log Z."""
    loss = PROVIDER.get_loss_function("Adaptive", weights_dir=converted_weights)
    leaves = jax.tree.leaves(loss)
    assert len(leaves) == 2 and all(leaf.shape == (1, 3 * 64 * 64) for leaf in leaves)


def test_a_corrupt_table_file_is_a_clear_error(tmp_path):
    from watson_jax import WeightsError

    good = original_weights("partition_spline.npz")
    (tmp_path / partition.TABLE_FILE).write_bytes(good.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="not a valid log-partition table.*delete it"):
        PROVIDER.get_loss_function("Adaptive", pretrained=False, weights_dir=tmp_path)
