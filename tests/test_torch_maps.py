"""Distance maps of the torch modules (``loss(x, y, spatial=True)``) against the JAX losses' maps.

Every torch loss returns (N, H, W) maps equal to ``watson_jax.Loss(..., spatial=True)`` in float64 (random
parameters: the converted weights perturbed, random Deeploss backbones); the analytic losses' maps sum to
their distances; the maps ignore the random shift and the module's training mode and draw no random numbers.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from watson_jax import LossProvider as JaxLossProvider  # noqa: E402
from watson_jax import OptionError  # noqa: E402
from watson_jax import torch as wtorch  # noqa: E402

JAX_PROVIDER = JaxLossProvider()
ANALYTIC = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT", "Adaptive"]
DEEPLOSS = ["Deeploss-VGG", "Deeploss-Squeeze"]
SHAPE = (2, 16, 24)  # N, H, W: non-square, multiples of 8
DEEPLOSS_SHAPE = (2, 24, 32)  # ≥ 17×17 for SqueezeNet
ADAPTIVE_SIZE = (3, *SHAPE[1:])
MAP_RTOL = 1e-9


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def images(shape, channels, seed=0):
    """x, y: NHWC float64 in [0, 1]; y smooth-ish, x = y with a changed region plus faint noise."""
    n, h, w = shape
    rng = np.random.default_rng(seed)
    y = (0.5 + 0.2 * rng.standard_normal((n, h, w, channels))).clip(0, 1)
    x = (y + 0.02 * rng.standard_normal(y.shape)).clip(0, 1)
    x[:, 3:11, 5:17] = rng.uniform(size=(n, 8, 12, channels))
    return x, y


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(a, (0, 3, 1, 2))))


def perturb(tree, rng):
    """Parameters moved randomly (β, Deeploss heads multiplicatively, so they keep their sign)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out[k] = perturb(v, rng)
            continue
        v = np.asarray(v)
        if k == "beta" or k.startswith("lin"):
            out[k] = (v * np.exp(rng.normal(0, 0.2, v.shape))).astype(np.float32)
        else:
            out[k] = (v + rng.normal(0, 0.3, v.shape)).astype(np.float32)
    return out


def torch_module(jax_loss):
    """The torch module of a JAX loss: same config, parameters, table and backbone; float64, eval mode."""
    config, params = jax_loss.config, jax.tree.map(np.asarray, jax_loss.params)
    name = config.name
    if name in ("L1", "L2", "SSIM"):
        module = {"L1": wtorch.L1, "L2": wtorch.L2, "SSIM": wtorch.SSIM}[name](config)
    elif name.startswith("Watson"):
        module = wtorch.Watson(name[-3:].lower(), config, params)
    elif name == "Adaptive":
        table = {k: np.asarray(v) for k, v in jax_loss.constants["log_partition"].items()}
        module = wtorch.Adaptive(config, ADAPTIVE_SIZE, params, table)
    else:
        module = wtorch.Deeploss(config, params, jax.tree.map(np.asarray, jax_loss.frozen))
    return module.double().eval()


def build(name, weights_dir, *, colorspace="RGB", luminance="image", deterministic=True, seed=1):
    """A JAX loss with random parameters (reduction 'none') and its torch module."""
    pretrained = name != "Adaptive"  # the pretrained Adaptive weights are for 64×64 images only
    jax_loss = JAX_PROVIDER.get_loss_function(
        name,
        colorspace,
        reduction="none",
        deterministic=deterministic,
        pretrained=pretrained,
        image_size=ADAPTIVE_SIZE if name == "Adaptive" else None,
        luminance=luminance,
        weights_dir=weights_dir,
    )
    jax_loss = jax_loss.replace(
        jax.tree.map(
            jnp.asarray,
            perturb(jax.tree.map(np.asarray, jax_loss.params), np.random.default_rng(seed)),
        )
    )
    return jax_loss, torch_module(jax_loss)


def jax_map(jax_loss, x, y):
    with jax.enable_x64(True):
        m = jax_loss(jnp.asarray(x), jnp.asarray(y), spatial=True)
        assert m.dtype == jnp.float64
        return np.asarray(m)


def torch_map(module, x, y, **kw):
    with torch.no_grad():
        return module(nchw(x), nchw(y), spatial=True, **kw)


def check_equal(got, want, rtol=MAP_RTOL):
    """Equal to rtol relative to the map's largest value (a map has entries near 0)."""
    assert got.shape == want.shape
    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert err <= rtol, f"max |torch − jax| / max |jax| = {err:.2e}"


def check_map(jax_loss, module, x, y, shape, sum_rtol):
    """The torch map equals the JAX one and sums over each image to the module's distance; returns it."""
    got = torch_map(module, x, y)
    assert got.dtype == torch.float64 and tuple(got.shape) == shape
    check_equal(got.numpy(), jax_map(jax_loss, x, y))
    with torch.no_grad():
        per_image = module(nchw(x), nchw(y))
    np.testing.assert_allclose(got.sum(dim=(1, 2)).numpy(), per_image.numpy(), rtol=sum_rtol)
    return got


CASES = (
    [(name, "RGB", 3, "image") for name in ANALYTIC]
    + [(name, "LA", 1, "image") for name in ANALYTIC]
    + [("Watson-DCT", "LA", 3, "batch"), ("Watson-DFT", "RGB", 3, "batch")]
)


@pytest.mark.parametrize("name,colorspace,channels,luminance", CASES)
def test_map_equals_jax_and_sums_to_the_distance(name, colorspace, channels, luminance, converted_weights):
    jax_loss, module = build(name, converted_weights, colorspace=colorspace, luminance=luminance)
    x, y = images(SHAPE, channels)
    check_map(jax_loss, module, x, y, SHAPE, sum_rtol=1e-10)


@pytest.mark.parametrize("name", DEEPLOSS)
def test_deeploss_map_equals_jax(name, converted_weights):
    jax_loss, module = build(name, converted_weights)
    x, y = images(DEEPLOSS_SHAPE, 3)
    # Its sum is the distance up to the bilinear interpolation of the coarse layers' maps.
    got = check_map(jax_loss, module, x, y, DEEPLOSS_SHAPE, sum_rtol=1e-2)

    # Training mode (dropout on the heads' inputs) does not change the map, nor draw from the generator.
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    module.train()
    np.testing.assert_array_equal(torch_map(module, x, y, generator=g).numpy(), got.numpy())
    assert torch.equal(g.get_state(), state)


def test_float32_map_is_float32(converted_weights):
    _, module = build("Watson-DFT", converted_weights)
    module.float()
    x, y = images(SHAPE, 3)
    with torch.no_grad():
        m = module(nchw(x).float(), nchw(y).float(), spatial=True)
    assert m.dtype == torch.float32 and tuple(m.shape) == SHAPE


@pytest.mark.parametrize("name", ["Watson-DCT", "Watson-DFT"])
def test_watson_map_has_no_shift_no_randomness_and_eval_mode(name, converted_weights):
    x, y = images(SHAPE, 3)
    _, fixed = build(name, converted_weights, deterministic=True)
    _, random = build(name, converted_weights, deterministic=False)
    want = torch_map(fixed, x, y).numpy()

    g = torch.Generator().manual_seed(5)
    state, global_state = g.get_state(), torch.get_rng_state()
    np.testing.assert_array_equal(torch_map(random, x, y, generator=g).numpy(), want)
    np.testing.assert_array_equal(torch_map(random, x, y).numpy(), want)
    random.train()  # the reference's tuning mode: Watson-DFT's dropout and the phase of the real bins
    np.testing.assert_array_equal(torch_map(random, x, y, generator=g).numpy(), want)
    np.testing.assert_array_equal(torch_map(random, x, y).numpy(), want)
    assert torch.equal(g.get_state(), state) and torch.equal(torch.get_rng_state(), global_state)

    # The map of a module with deterministic=False sums to the distance of the unshifted images.
    with torch.no_grad():
        per_image = random.eval()(nchw(x), nchw(y), shift=(4, 4))
    np.testing.assert_allclose(want.sum(axis=(1, 2)), per_image.numpy(), rtol=1e-10)


def test_map_follows_the_gradient(converted_weights):
    """The map is differentiable: the gradient of its sum is the gradient of the distance."""
    _, module = build("Watson-DFT", converted_weights)
    x, y = images(SHAPE, 3)
    grads = []
    for spatial in (True, False):
        tx = nchw(x).requires_grad_(True)
        out = module(tx, nchw(y), spatial=spatial)
        out.sum().backward()
        grads.append(tx.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-7, atol=1e-12 * np.abs(grads[1]).max())


@pytest.mark.parametrize(
    "name,kw",
    [
        ("Watson-DFT", {"shift": (1, 2)}),
        ("Watson-DCT", {"shift": (4, 4)}),
        ("L1", {"elementwise": True}),
        ("SSIM", {"shift": (1, 2)}),
    ],
)
def test_invalid_combinations_raise(name, kw, converted_weights):
    _, module = build(name, converted_weights)
    x, y = images(SHAPE, 3)
    with pytest.raises(OptionError):
        module(nchw(x), nchw(y), spatial=True, **kw)
