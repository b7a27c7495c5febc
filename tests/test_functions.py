"""The typed public functions (watson_jax.l1 … deeploss_squeeze) against the golden files of the original
implementation, with and without jit (chex variants), and their argument checks.

Oracle: ../shared/golden (values and input gradients of the original). Tolerances are the golden README's,
as in tests/test_parity.py: float32 values rtol 1e-6 (L1, L2), 2e-4 (SSIM), 1e-5 (Watson, Adaptive),
1e-4 (Deeploss); the identical pair of the Watson losses 1e-4 / 1e-3; float64 values and gradients rel. 1e-6.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import load_golden, nchw, nhwc, rel_l2

import watson_jax
from watson_jax import InputError, OptionError

FUNCTIONS = {
    "L1": watson_jax.l1,
    "L2": watson_jax.l2,
    "SSIM": watson_jax.ssim,
    "Watson-DCT": watson_jax.watson_dct,
    "Watson-DFT": watson_jax.watson_dft,
    "Adaptive": watson_jax.adaptive,
    "Deeploss-VGG": watson_jax.deeploss_vgg,
    "Deeploss-Squeeze": watson_jax.deeploss_squeeze,
}
STEMS = {name: name.lower().replace("-", "_") for name in FUNCTIONS}
VALUE_RTOL = {
    "L1": 1e-6,
    "L2": 1e-6,
    "SSIM": 2e-4,
    "Watson-DCT": 1e-5,
    "Watson-DFT": 1e-5,
    "Adaptive": 1e-5,
    "Deeploss-VGG": 1e-4,
    "Deeploss-Squeeze": 1e-4,
}
IDENTICAL_PAIR_RTOL = {"Watson-DCT": 1e-4, "Watson-DFT": 1e-3}
#: Deeploss's identical pair is 0 in the original and float32 round-off of the features here (measured
#: 9.5e-17 for VGG), so it gets an absolute tolerance, as in tests/test_deeploss.py.
ATOL = {"Deeploss-VGG": 1e-12, "Deeploss-Squeeze": 1e-12}


def arguments(name: str, colorspace: str, weights_dir) -> tuple[tuple, dict]:
    """(params,) and the keyword arguments a call of the function needs: pretrained parameters (the golden
    files' weights), a Deeploss loss's backbone (the golden random one), Adaptive's table."""
    params = watson_jax.pretrained_params(name, colorspace, weights_dir=weights_dir)
    if name in ("L1", "L2", "SSIM"):
        return (), {}
    if name == "Adaptive":
        return (params,), {"table": watson_jax.log_partition_table(weights_dir)}
    if name.startswith("Deeploss"):
        return (params,), {"backbone": watson_jax.load_backbone(name, weights_dir=weights_dir)}
    return (params,), {}


def expected_per_image(g) -> np.ndarray:
    """The original's distance of each pair computed alone (its luminance not coupled to the batch)."""
    if "value_none_sum_hw" in g:  # L1, L2, Adaptive: elementwise maps summed in float64
        return g["value_none_sum_hw"].sum(axis=1)
    return g["value_none_single"].reshape(len(g["input"]))


#: Each function is checked as it is and under jax.jit (what chex.variants does for absltest classes;
#: a pytest parameter here, so that the session fixtures reach the test).
VARIANTS = {"eager": lambda f: f, "jit": jax.jit}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("colorspace", ["rgb", "la"])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_values_equal_the_original(name, colorspace, variant, converted_weights):
    g = load_golden(f"{STEMS[name]}_{colorspace}")
    x, y = nhwc(g["input"]), nhwc(g["target"])
    args, kwargs = arguments(name, colorspace, converted_weights)
    fn = VARIANTS[variant](lambda a, b, *p: FUNCTIONS[name](a, b, *p, **kwargs))
    got = fn(x, y, *args)
    chex.assert_shape(got, (len(x),))
    chex.assert_type(got, jnp.float32)
    got = np.asarray(got, np.float64)
    want = expected_per_image(g)
    tol = np.full(want.shape, VALUE_RTOL[name])  # the golden README's float32 table (module docstring)
    i = int(g["identical_pair_index"])
    if name in IDENTICAL_PAIR_RTOL:
        tol[i] = IDENTICAL_PAIR_RTOL[name]
    if name in ("L1", "L2", "SSIM"):  # 0 for x == y, in both
        assert abs(got[i]) <= 1e-7
        want = np.where(np.arange(len(want)) == i, got[i], want)
    np.testing.assert_array_less(np.abs(got - want), tol * np.abs(want) + ATOL.get(name, 1e-30))


# (loss, golden colour space): float64 input gradients of the sum over the batch, with the batch luminance
# of the original for the Watson losses; rel. L2 ≤ 1e-6 per pair (golden README, float64).
F64_GRADIENT_CASES = [
    ("Watson-DCT", "la"),
    ("Watson-DFT", "rgb"),
    ("Deeploss-Squeeze", "rgb"),
]


@pytest.mark.parametrize("name,colorspace", F64_GRADIENT_CASES)
def test_function_gradients_equal_the_original_in_float64(name, colorspace, converted_weights):
    g = load_golden(f"{STEMS[name]}_{colorspace}")
    args, kwargs = arguments(name, colorspace, converted_weights)
    if name.startswith("Watson"):
        kwargs["luminance"] = "batch"
    with jax.enable_x64(True):
        x, y = (jnp.asarray(nhwc(g[k]), jnp.float64) for k in ("input", "target"))
        args = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), args)
        total = lambda a: jnp.sum(FUNCTIONS[name](a, y, *args, **kwargs))  # noqa: E731
        value, grad = jax.jit(jax.value_and_grad(total))(x)
    assert grad.dtype == jnp.float64
    np.testing.assert_allclose(float(value), g["value_sum_f64"], rtol=1e-6)  # golden README, float64
    grad, want = nchw(grad), g["grad_input_f64"]
    for p in range(len(want)):
        if p == int(g["identical_pair_index"]) and name.startswith("Watson"):
            assert np.all(grad[p] == 0), f"pair {p}: gradient at x == y is not 0"  # exact by construction
        elif p == int(g["identical_pair_index"]) and name.startswith("Deeploss"):
            # round-off of the two images' features (measured max 2e-19 in float64), not exactly 0
            assert np.max(np.abs(grad[p])) <= 1e-15, f"pair {p}"
        else:
            assert rel_l2(grad[p], want[p]) <= 1e-6, f"pair {p}"


def test_random_shift_is_one_of_the_64_shifts_of_the_original(converted_weights):
    """random_shift=True with a key gives the original's value at one of the 64 offsets (golden
    shift_values: pair 0 alone), and the same key gives the same offset; an explicit shift= gives that
    offset's value."""
    g = load_golden("watson_dft_rgb")
    x, y = nhwc(g["input"])[:1], nhwc(g["target"])[:1]
    (params,), _ = arguments("Watson-DFT", "rgb", converted_weights)
    fn = jax.jit(watson_jax.watson_dft, static_argnames=("random_shift",))
    drawn = [float(fn(x, y, params, key=jax.random.key(k), random_shift=True)[0]) for k in range(3)]
    for value in drawn:
        assert np.min(np.abs(g["shift_values"] - value) / g["shift_values"]) <= 3e-5
    assert drawn[0] == float(fn(x, y, params, key=jax.random.key(0), random_shift=True)[0])
    # 3e-5: the golden README's shift tolerance for Watson-DFT float32 (as tests/test_parity.py SHIFT_RTOL)
    np.testing.assert_allclose(float(fn(x, y, params, shift=(2, 5))[0]), g["shift_values"][2, 5], rtol=3e-5)


@pytest.mark.parametrize("name", ["Watson-DCT", "Watson-DFT", "Adaptive"])
def test_no_params_means_the_initial_parameters(name):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(2, 2, 16, 24, 3)).astype(np.float32)
    fn = FUNCTIONS[name]
    size = {"image_size": (3, 16, 24)} if name == "Adaptive" else {}
    chex.assert_trees_all_close(
        fn(x, y), fn(x, y, watson_jax.init_params(name, "RGB", **size)), rtol=0, atol=0
    )
    if name != "Adaptive":
        grey = x[..., :1], y[..., :1]
        chex.assert_trees_all_close(
            fn(*grey), fn(*grey, watson_jax.init_params(name, "grey")), rtol=0, atol=0
        )


def test_parameter_gradients_and_vmap_over_keys():
    """Tuning: the gradient with respect to the parameters of Watson-DFT in tuning mode is finite and not
    zero for every parameter leaf, and vmap over keys gives the values of the separate calls."""
    rng = np.random.default_rng(1)
    x, y = rng.uniform(size=(2, 2, 16, 16, 3)).astype(np.float32)
    params = watson_jax.init_params("Watson-DFT", "RGB")
    grads = jax.grad(lambda p: jnp.sum(watson_jax.watson_dft(x, y, p, key=jax.random.key(1), tuning=True)))(
        params
    )
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf)) and np.any(leaf != 0)
    keys = jax.random.split(jax.random.key(2), 3)
    fn = lambda k: watson_jax.watson_dft(x, y, params, key=k, random_shift=True, tuning=True)  # noqa: E731
    chex.assert_trees_all_close(jax.vmap(fn)(keys), jnp.stack([fn(k) for k in keys]), rtol=1e-6)


def test_the_facade_and_the_function_agree():
    """LossProvider's loss (reduction 'none', deterministic=False) and watson_dft with random_shift=True
    draw the same shift from the same key."""
    rng = np.random.default_rng(2)
    x, y = rng.uniform(size=(2, 3, 16, 16, 3)).astype(np.float32)
    loss = watson_jax.LossProvider().get_loss_function("Watson-DFT", "RGB", "none", pretrained=False)
    key = jax.random.key(5)
    chex.assert_trees_all_close(
        loss(x, y, key), watson_jax.watson_dft(x, y, key=key, random_shift=True), rtol=0, atol=0
    )


def test_bad_arguments_are_clear_errors():
    x = np.zeros((1, 16, 16, 3), np.float32)
    rgb = watson_jax.init_params("Watson-DFT", "RGB")
    with pytest.raises(OptionError, match="needs a PRNG key"):
        watson_jax.watson_dft(x, x, random_shift=True)
    with pytest.raises(OptionError, match="dropout"):
        watson_jax.watson_dft(x, x, tuning=True)
    with pytest.raises(InputError, match="RGB parameters but the images have 1 channel"):
        watson_jax.watson_dft(x[..., :1], x[..., :1], rgb)
    with pytest.raises(InputError, match="multiples of 8"):
        watson_jax.watson_dct(x[:, :12], x[:, :12])
    with pytest.raises(OptionError, match="luminance"):
        watson_jax.watson_dct(x, x, luminance="global")
    with pytest.raises(OptionError, match="backbone"):
        watson_jax.deeploss_vgg(x, x, backbone=None)
    with pytest.raises(OptionError, match="image_size is for the Adaptive loss only"):
        watson_jax.init_params("Watson-DFT", "RGB", image_size=(3, 8, 8))
    with pytest.raises(OptionError, match="has no backbone"):
        watson_jax.load_backbone("L2")
