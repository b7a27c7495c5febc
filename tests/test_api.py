"""The public API: names, options, reductions, pytree behaviour, jit/vmap/grad/sharding, dtypes, tuning."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import forward, load_golden, nhwc

from watson_jax import Loss, LossProvider, OptionError
from watson_jax.color import rgb_to_grey
from watson_jax.errors import InputError
from watson_jax.losses import watson

PROVIDER = LossProvider()
ALL = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT"]  # Adaptive: tests/test_adaptive.py


def images(n=3, h=16, w=24, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(size=(n, h, w, c)).astype(np.float32),
        rng.uniform(size=(n, h, w, c)).astype(np.float32),
    )


def make(name, **kw):
    kw.setdefault("deterministic", True)
    kw.setdefault("pretrained", False)
    return PROVIDER.get_loss_function(name, **kw)


@pytest.mark.parametrize(
    "alias,canonical",
    [
        ("l1", "L1"),
        ("l2", "L2"),
        ("ssim", "SSIM"),
        ("Watson", "Watson-DCT"),
        ("watson-dct", "Watson-DCT"),
        ("WATSON-FFT", "Watson-DFT"),
        ("watson_dft", "Watson-DFT"),
        ("Watson-DFT", "Watson-DFT"),
    ],
)
def test_names_are_case_insensitive_with_aliases(alias, canonical):
    assert make(alias).name == canonical


def test_available_lists_the_losses():
    assert LossProvider.available() == ALL + ["Adaptive", "Deeploss-VGG", "Deeploss-Squeeze"]


@pytest.mark.parametrize("name", ["L1", "SSIM", "Watson-DCT", "Watson-DFT"])
def test_reductions(name):
    x, y = images()
    per_image = forward(make(name, reduction="none"), x, y)
    assert per_image.shape == (3,)
    np.testing.assert_allclose(forward(make(name, reduction="sum"), x, y), per_image.sum(), rtol=1e-6)
    np.testing.assert_allclose(forward(make(name, reduction="mean"), x, y), per_image.mean(), rtol=1e-6)


def test_pixel_losses_sum_over_each_image():
    # float32 sums of 1152 terms against numpy: measured rel. 3.0e-7 (L1) and 4.4e-7 (L2); rtol 1e-5.
    x, y = images()
    np.testing.assert_allclose(
        forward(make("L1", reduction="none"), x, y), np.abs(x - y).sum(axis=(1, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(
        forward(make("L2", reduction="none"), x, y), ((x - y) ** 2).sum(axis=(1, 2, 3)), rtol=1e-5
    )


@pytest.mark.parametrize("colorspace", ["LA", "l", "Grey", "gray", "GREYSCALE"])
@pytest.mark.parametrize("name", ALL)
def test_greyscale_takes_one_channel_or_converts_three(name, colorspace):
    x, y = images()
    loss = make(name, colorspace=colorspace, reduction="none")

    def grey(a):
        return (a[..., :1] * np.float32(0.3) + a[..., 1:2] * np.float32(0.59)) + a[..., 2:] * np.float32(0.11)

    np.testing.assert_allclose(forward(loss, x, y), forward(loss, grey(x), grey(y)), rtol=1e-6)


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
        darker = np.array([1, 0.2, 1], np.float32)[:, None, None, None]  # images of unequal luminance
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
    # The step's value is the tuning-mode loss of the initial parameters, evaluated here outside the
    # step's program (measured difference 0; 1e-6 allows another fusion of the two programs).
    np.testing.assert_allclose(value, loss(x, y, key=jax.random.key(0), tuning=True), rtol=1e-6)
    for old, new in zip(jax.tree.leaves(loss.params), jax.tree.leaves(params)):
        assert np.all(np.isfinite(new))
        assert not np.array_equal(old, new)
    tuned = loss.replace(params)
    # measured: 0 on CPU (one computation through two entry points); 1e-6 for fusion differences elsewhere
    np.testing.assert_allclose(
        tuned(x, y, key=jax.random.key(1)), loss.apply(params, x, y, jax.random.key(1)), rtol=1e-6
    )


def test_tuning_mode_draws_dropout_and_activates_real_phase_bins():
    x, y = images()
    loss = make("Watson-DFT", reduction="none", colorspace="grey")
    a = loss(x, y, key=jax.random.key(0), tuning=True)
    b = loss(x, y, key=jax.random.key(1), tuning=True)
    assert not np.allclose(a, b)
    # The phase weights of the four real bins enter the loss in tuning mode only.
    grad = lambda tuning: jax.grad(lambda p: loss.apply(p, x, y, jax.random.key(0), tuning=tuning).sum())(  # noqa: E731
        loss.params
    )["w_phase_tild"]
    real = np.zeros((8, 5), bool)
    real[[0, 0, 4, 4], [0, 4, 0, 4]] = True
    assert np.all(grad(False)[real] == 0) and np.all(grad(False)[~real] != 0)
    assert np.all(grad(True)[real] != 0)


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
    # (4, 4) moves nothing: measured difference 0.0; 1e-6 leaves room for the two compiled programs
    # (shifted and unshifted paths) fusing differently on another backend.
    np.testing.assert_allclose(
        loss(x, y, shift=(4, 4)), make("Watson-DCT", reduction="none")(x, y), rtol=1e-6
    )


def test_pixel_losses_need_no_key_even_when_not_deterministic():
    x, y = images()
    # Σ(x − y)² in float64: the float32 sum of 3456 terms is off by 2.2e-7 relative (measured) → 1e-6.
    want = np.sum((x.astype(np.float64) - y) ** 2)
    # measured: 2.2e-7 relative against the float64 sum of squares (float32 summation order), ~4x room
    np.testing.assert_allclose(make("L2", deterministic=False)(x, y), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype):
    x, y = images()
    loss = make("Watson-DFT")
    got = loss(jnp.asarray(x, dtype), jnp.asarray(y, dtype))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(
        got,
        loss(jnp.asarray(x, dtype).astype(jnp.float32), jnp.asarray(y, dtype).astype(jnp.float32)),
        rtol=1e-6,
    )


def test_float64_inputs_compute_in_float64_with_x64():
    x, y = images()
    with jax.enable_x64(True):
        got = make("SSIM", reduction="none")(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
        assert got.dtype == jnp.float64
    # An independent float64 SSIM (scipy, zero padding, the reference's float32 window): measured
    # difference 1.1e-16 relative, float64 rounding → 1e-12. With an exact float64 window the difference
    # would be 1.9e-7, with a float32-summed normaliser 4.1e-7: the test tells the windows apart.
    # measured: 1.1e-16 (float64 throughout); a float32 window would show 1.9e-7, so 1e-12 tells them apart
    np.testing.assert_allclose(got, reference_ssim_float64(x, y), rtol=1e-12)


def reference_ssim_float64(x, y):
    """1 − mean SSIM per image, in numpy/scipy float64, from the formula (docs/reference.md §2): 11×11
    window fl32(g gᵀ) of the float32 taps g ∝ exp(−(i−5)²/(2·1.5²)) divided by their sum rounded to
    float32 (the reference's torch window), 'same' zero-padded filtering, C1 = 0.01², C2 = 0.03²."""
    from scipy.signal import correlate2d

    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2)).astype(np.float32)
    g = g / np.float32(g.astype(np.float64).sum())
    window = np.outer(g, g).astype(np.float64)  # the outer product of float32 taps, in float32

    def filt(a):
        return np.stack(
            [
                np.stack([correlate2d(img[:, :, c], window, mode="same") for c in range(a.shape[-1])], -1)
                for img in a
            ]
        )

    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx * mx, filt(y * y) - my * my, filt(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ssim = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1 - ssim.mean(axis=(1, 2, 3))


def test_sharded_batch_equals_unsharded():
    # The CPU backend exists everywhere (a GPU machine too), and tests/conftest.py appends the flag that
    # gives it two devices to any XLA_FLAGS: fewer is a broken test set-up, not a reason to skip.
    devices = jax.devices("cpu")
    assert len(devices) >= 2, f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r} gave {len(devices)} CPU device(s)"
    mesh = jax.sharding.Mesh(np.array(devices[:2]), ("batch",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    x, y = (jax.device_put(a, devices[0]) for a in images(n=4))
    loss = make("Watson-DFT", reduction="none")
    xs, ys = jax.device_put(x, spec), jax.device_put(y, spec)
    got = forward(loss, xs, ys)
    assert len(got.sharding.device_set) == 2  # the computation really ran on both devices
    np.testing.assert_allclose(got, forward(loss, x, y), rtol=1e-6)
    batch_loss = make("Watson-DFT", luminance="batch")
    np.testing.assert_allclose(forward(batch_loss, xs, ys), forward(batch_loss, x, y), rtol=1e-6)


def test_ssim_reduction_differs_from_reference_sum_as_documented():
    """The reference's SSIM 'sum' is a batch mean; ours is a sum, and 'mean' gives the reference number."""
    g = load_golden("ssim_rgb")
    x, y = nhwc(g["input"]), nhwc(g["target"])
    np.testing.assert_allclose(forward(make("SSIM", reduction="mean"), x, y), g["value_sum"], rtol=2e-4)
    np.testing.assert_allclose(forward(make("SSIM", reduction="sum"), x, y), 4 * g["value_sum"], rtol=2e-4)


def test_tuning_mode_without_randomness_needs_no_key():
    """Watson-DCT has no dropout; a deterministic call in tuning mode is valid without a key."""
    x, y = images()
    for colorspace in ("RGB", "LA"):
        loss = make("Watson-DCT", colorspace=colorspace)
        np.testing.assert_allclose(loss(x, y, tuning=True), loss(x, y), rtol=1e-6)
    with pytest.raises(OptionError, match="tuning mode"):
        make("Watson-DFT")(x, y, tuning=True)


@pytest.mark.parametrize("name", ALL)
def test_float32_inputs_stay_float32_with_x64_enabled(name):
    x, y = images()
    shift = (4, 4) if name.startswith("Watson") else None
    plain = make(name)(x, y, shift=shift)
    with jax.enable_x64(True):
        got = make(name)(x, y, shift=shift)
    assert got.dtype == jnp.float32
    # The same float32 computation: measured difference 0 for every loss; 1e-6 (a few ulps) because x64
    # mode may compile the program differently (other constant dtypes, other fusion), which the maths
    # does not fix.
    # measured: 0 (float32 inputs with x64 enabled follow the float32 path); 1e-6 for fusion differences
    np.testing.assert_allclose(got, plain, rtol=1e-6)


def test_numpy_float64_inputs_without_x64_give_no_warnings():
    import warnings

    x, y = images()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = make("Watson-DFT")(x.astype(np.float64), y.astype(np.float64))
    assert got.dtype == jnp.float32
    # float64 numpy arrays of float32 values are exactly these float32 values: the same program, so the
    # same number (measured: equal).
    np.testing.assert_array_equal(got, make("Watson-DFT")(x, y))


def test_keys_are_checked_only_when_used():
    x, y = images()
    # ignored: L1 draws nothing. Σ|x − y| in float64: float32 summation error 1.3e-7 relative (measured).
    want = np.sum(np.abs(x.astype(np.float64) - y))
    # measured: 1.3e-7 relative against the float64 sum of |x - y| (float32 summation order), ~8x room
    np.testing.assert_allclose(make("L1")(x, y, key=0), want, rtol=1e-6)
    with pytest.raises(OptionError, match=r"one PRNG key.*jax.random.key\(0\).*vmap"):
        make("Watson-DFT", deterministic=False)(x, y, key=0)
    with pytest.raises(OptionError, match="one PRNG key"):
        make("Watson-DFT", deterministic=False)(x, y, key=jax.random.split(jax.random.key(0), 3))


def test_shift_is_only_for_the_watson_losses_and_may_be_traced():
    x, y = images()
    with pytest.raises(OptionError, match="Watson losses only"):
        make("L1")(x, y, shift=(1, 2))
    loss = make("Watson-DCT")
    traced = jax.jit(lambda sx: loss(x, y, shift=(sx, 3)))(2)
    np.testing.assert_allclose(traced, loss(x, y, shift=(2, 3)), rtol=1e-6)
    with pytest.raises(InputError, match="shift must be a pair"):
        loss(x, y, shift=(1, 2, 3))
