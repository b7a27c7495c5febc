"""The public API: names, options, reductions, pytree behaviour, jit/vmap/grad/sharding, dtypes, tuning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import forward, load_golden, nhwc
from watson_jax import Loss, LossProvider, OptionError
from watson_jax.color import rgb_to_grey
from watson_jax.losses import watson

PROVIDER = LossProvider()
ALL = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT"]


def images(n=3, h=16, w=24, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, h, w, c)).astype(np.float32), rng.uniform(size=(n, h, w, c)).astype(np.float32))


def make(name, **kw):
    kw.setdefault("deterministic", True)
    kw.setdefault("pretrained", False)
    return PROVIDER.get_loss_function(name, **kw)


@pytest.mark.parametrize("alias,canonical", [
    ("l1", "L1"), ("l2", "L2"), ("ssim", "SSIM"), ("Watson", "Watson-DCT"), ("watson-dct", "Watson-DCT"),
    ("WATSON-FFT", "Watson-DFT"), ("watson_dft", "Watson-DFT"), ("Watson-DFT", "Watson-DFT")])
def test_names_are_case_insensitive_with_aliases(alias, canonical):
    assert make(alias).name == canonical


def test_available_lists_the_five_losses():
    assert LossProvider.available() == ALL


@pytest.mark.parametrize("name", ["L1", "SSIM", "Watson-DCT", "Watson-DFT"])
def test_reductions(name):
    x, y = images()
    per_image = forward(make(name, reduction="none"), x, y)
    assert per_image.shape == (3,)
    np.testing.assert_allclose(forward(make(name, reduction="sum"), x, y), per_image.sum(), rtol=1e-6)
    np.testing.assert_allclose(forward(make(name, reduction="mean"), x, y), per_image.mean(), rtol=1e-6)


def test_pixel_losses_sum_over_each_image():
    x, y = images()
    np.testing.assert_allclose(forward(make("L1", reduction="none"), x, y), np.abs(x - y).sum(axis=(1, 2, 3)),
                               rtol=1e-5)
    np.testing.assert_allclose(forward(make("L2", reduction="none"), x, y), ((x - y) ** 2).sum(axis=(1, 2, 3)),
                               rtol=1e-5)


@pytest.mark.parametrize("colorspace", ["LA", "l", "Grey", "gray", "GREYSCALE"])
@pytest.mark.parametrize("name", ALL)
def test_greyscale_takes_one_channel_or_converts_three(name, colorspace):
    x, y = images()
    loss = make(name, colorspace=colorspace, reduction="none")
    from_rgb = forward(loss, x, y)
    from_grey = forward(loss, rgb_to_grey(x), rgb_to_grey(y))
    np.testing.assert_allclose(from_rgb, from_grey, rtol=1e-6)
    np.testing.assert_allclose(rgb_to_grey(x)[..., 0], 0.3 * x[..., 0] + 0.59 * x[..., 1] + 0.11 * x[..., 2],
                               rtol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_jit_equals_eager(name):
    x, y = images()
    loss = make(name, reduction="none")
    np.testing.assert_allclose(jax.jit(lambda a, b: loss(a, b))(x, y), loss(x, y), rtol=1e-5)


@pytest.mark.parametrize("name", ["SSIM", "Watson-DCT", "Watson-DFT"])
def test_vmap_over_single_images_equals_batched_call(name):
    """With per-image luminance no image depends on the others: vmapping over batches of one equals the
    batched call; with the reference's batch luminance the Watson values do depend on the batch."""
    x, y = images()
    loss = make(name, reduction="none")
    single = jax.vmap(lambda a, b: loss(a[None], b[None])[0])(x, y)
    np.testing.assert_allclose(single, forward(loss, x, y), rtol=1e-5)
    if name.startswith("Watson"):
        darker = np.array([1, 0.2, 1], np.float32)[:, None, None, None]   # images of unequal luminance
        x, y = x * darker, y * darker
        batch = make(name, reduction="none", luminance="batch")
        alone = jax.vmap(lambda a, b: batch(a[None], b[None])[0])(x, y)
        assert np.max(np.abs(forward(batch, x, y) / alone - 1)) > 1e-4


def test_loss_is_a_pytree_of_its_parameters():
    loss = make("Watson-DFT")
    leaves = jax.tree.leaves(loss)
    assert len(leaves) == len(jax.tree.leaves(loss.params)) == 1 + 3 * 5
    doubled = jax.tree.map(lambda p: 2 * p, loss)
    assert isinstance(doubled, Loss) and doubled.config == loss.config
    np.testing.assert_allclose(doubled.params["ly"]["beta"], 2 * loss.params["ly"]["beta"])


def test_apply_is_pure_and_differentiable_in_the_parameters():
    x, y = images()
    loss = make("Watson-DFT")
    grads = jax.jit(jax.grad(lambda p: loss.apply(p, x, y)))(loss.params)
    assert jax.tree.structure(grads) == jax.tree.structure(loss.params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert np.abs(grads["ly"]["t_tild"]).sum() > 0


def test_optax_adam_step_changes_watson_dft_parameters():
    x, y = images()
    loss = make("Watson-DFT", deterministic=False)
    opt = optax.adam(1e-2)
    state = opt.init(loss.params)

    @jax.jit
    def step(params, state, key):
        value, grads = jax.value_and_grad(lambda p: loss.apply(p, x, y, key, tuning=True))(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, value

    params, state, value = step(loss.params, state, jax.random.key(0))
    assert np.isfinite(value)
    for old, new in zip(jax.tree.leaves(loss.params), jax.tree.leaves(params)):
        assert np.all(np.isfinite(new))
        assert not np.array_equal(old, new)
    tuned = loss.replace(params)
    assert np.isfinite(tuned(x, y, key=jax.random.key(1)))


def test_tuning_mode_draws_dropout_and_activates_real_phase_bins():
    x, y = images()
    loss = make("Watson-DFT", reduction="none")
    a = loss(x, y, key=jax.random.key(0), tuning=True)
    b = loss(x, y, key=jax.random.key(1), tuning=True)
    assert not np.allclose(a, b)
    inference = watson.phase_weights(jnp.zeros((8, 5)), tuning=False)
    tuning = watson.phase_weights(jnp.zeros((8, 5)), tuning=True)
    for u, v in [(0, 0), (0, 4), (4, 0), (4, 4)]:
        assert inference[u, v] == 0 and tuning[u, v] == 1
    assert np.count_nonzero(inference) == 40 - 4


def test_tuning_mode_expectation_matches_inference_amplitudes():
    """Dropout is scaled by 2, so over many keys the tuned amplitude term averages to the untuned one."""
    x, y = images(n=1)
    p = watson.init_channel_params("dft")
    p = {**p, "w_phase_tild": np.full((8, 5), -30.0, np.float32)}  # phase term negligible
    loss = make("Watson-DFT", colorspace="grey").replace(p)
    x, y = rgb_to_grey(x), rgb_to_grey(y)
    keys = jax.random.split(jax.random.key(0), 200)
    tuned = jax.jit(jax.vmap(lambda k: loss(x, y, key=k, tuning=True)))(keys)
    np.testing.assert_allclose(tuned.mean(), loss(x, y), rtol=0.02)


def test_random_shift_needs_a_key_and_uses_it():
    x, y = images()
    loss = make("Watson-DCT", deterministic=False, reduction="none")
    values = {float(loss(x, y, key=jax.random.key(k)).sum()) for k in range(6)}
    assert len(values) > 1
    np.testing.assert_allclose(loss(x, y, shift=(4, 4)), make("Watson-DCT", reduction="none")(x, y), rtol=1e-6)


def test_pixel_losses_need_no_key_even_when_not_deterministic():
    x, y = images()
    assert np.isfinite(make("L2", deterministic=False)(x, y))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype):
    x, y = images()
    loss = make("Watson-DFT")
    got = loss(jnp.asarray(x, dtype), jnp.asarray(y, dtype))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, loss(jnp.asarray(x, dtype).astype(jnp.float32),
                                         jnp.asarray(y, dtype).astype(jnp.float32)), rtol=1e-6)


def test_float64_inputs_compute_in_float64_with_x64():
    x, y = images()
    with jax.enable_x64(True):
        got = make("SSIM")(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
        assert got.dtype == jnp.float64


def test_sharded_batch_equals_unsharded():
    devices = jax.devices()
    if len(devices) < 2:
        pytest.skip("needs two devices (tests/conftest.py asks XLA for two CPU devices)")
    mesh = jax.sharding.Mesh(np.array(devices[:2]), ("batch",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    x, y = images(n=4)
    loss = make("Watson-DFT", reduction="none")
    xs, ys = jax.device_put(x, spec), jax.device_put(y, spec)
    got = forward(loss, xs, ys)
    np.testing.assert_allclose(got, forward(loss, x, y), rtol=1e-6)
    batch_loss = make("Watson-DFT", luminance="batch")
    np.testing.assert_allclose(forward(batch_loss, xs, ys), forward(batch_loss, x, y), rtol=1e-6)


def test_ssim_reduction_differs_from_reference_sum_as_documented():
    """The reference's SSIM 'sum' is a batch mean; ours is a sum, and 'mean' gives the reference number."""
    g = load_golden("ssim_rgb")
    x, y = nhwc(g["input"]), nhwc(g["target"])
    np.testing.assert_allclose(forward(make("SSIM", reduction="mean"), x, y), g["value_sum"], rtol=2e-4)
    np.testing.assert_allclose(forward(make("SSIM", reduction="sum"), x, y), 4 * g["value_sum"], rtol=2e-4)


def test_missing_key_error_is_clear():
    x, y = images()
    with pytest.raises(OptionError, match="needs a PRNG key"):
        make("Watson-DFT", deterministic=False)(x, y)
    with pytest.raises(OptionError, match="tuning mode"):
        make("Watson-DFT")(x, y, tuning=True)
