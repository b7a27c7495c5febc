"""The JAX losses against the project's PyTorch implementation on random inputs, sizes (one to three
8-pixel blocks each way, square and non-square), colour spaces, options, random parameters and image
pairs at the losses' edges (identical, one block differing, near-identical, constant, black; hypothesis,
20 drawn examples per loss and the explicit edge cases): values and gradients w.r.t. both images.

Both sides compute in float64, where the two independent implementations must agree to rounding
(values rtol 1e-9, gradients relative L2 1e-7, each with an absolute floor measured where the value or
the gradient is 0 up to rounding); float32 against the golden files is in the parity tests. The JAX side is
one jitted function (a compile per shape and configuration costs about 1.3 s for Watson-DFT; op by op it
cost 8 s, which kept the shapes few).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import original_weights
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from watson_jax import Loss, partition, registry
from watson_jax import torch as wtorch
from watson_jax.provider import Constants, LossConfig

NAMES = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT", "Adaptive"]
# (N, H, W): one image or two, one to three 8-pixel blocks in each direction, square and non-square.
# SSIM draws sides of 16 or more, so its 11×11 window fits.
SIDES = (8, 16, 24)
# How y is made from x: pairs the losses meet at their edges (x == y, where the gradient of every loss
# but SSIM is exactly 0; a constant or black target y, where Watson's luminance masking sees zero
# luminance; one block differing; differences near float64 rounding) as well as independent images.
PAIRS = ("independent", "identical", "one-block", "near-identical", "constant", "black")


def shapes(name):
    sides = st.sampled_from([s for s in SIDES if name != "SSIM" or s >= 16])
    return st.tuples(st.sampled_from([1, 2]), sides, sides)


def image_pair(kind, n, h, w, channels, rng):
    """Images x, y of shape (n, h, w, channels) in [0, 1] related as ``kind`` says (see PAIRS)."""
    x = rng.uniform(size=(n, h, w, channels))
    if kind == "independent":
        return x, rng.uniform(size=x.shape)
    if kind == "identical":
        return x, x.copy()
    if kind == "one-block":
        y = x.copy()
        i, j = rng.integers(0, h // 8), rng.integers(0, w // 8)
        y[:, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8] = rng.uniform(size=(n, 8, 8, channels))
        return x, y
    if kind == "near-identical":
        return x, np.clip(x + rng.normal(0, 1e-6, x.shape), 0, 1)
    # The target y is the masking reference (its mean luminance divides): constant or black there.
    if kind == "constant":
        return x, np.full_like(x, rng.uniform())
    if kind == "black":
        return (np.zeros_like(x) if rng.integers(2) else x), np.zeros_like(x)
    raise ValueError(kind)


@functools.cache
def log_partition_table():
    """Barron's table (the library's own agrees with it; tests/test_adaptive.py)."""
    return partition.read_table(original_weights("partition_spline.npz"))


def random_params(metric, colorspace, image_size, rng):
    """The initial parameters, perturbed (β kept positive)."""

    def perturb(tree):
        out = {}
        for k, v in tree.items():
            if isinstance(v, dict):
                out[k] = perturb(v)
            elif k == "beta":
                out[k] = np.float32(v * np.exp(rng.normal(0, 0.2)))
            else:
                out[k] = (v + rng.normal(0, 0.3, np.shape(v))).astype(np.float32)
        return out

    return perturb(metric.init_params(colorspace, image_size))


def torch_loss(config, params, image_size):
    if config.name == "Adaptive":
        return wtorch.Adaptive(config, image_size, params, log_partition_table()).double().eval()
    if config.name.startswith("Watson"):
        return wtorch.Watson(config.name[-3:].lower(), config, params).double().eval()
    return {"L1": wtorch.L1, "L2": wtorch.L2, "SSIM": wtorch.SSIM}[config.name](config).eval()


@jax.jit
def value_and_vjp(loss, x, y, cotangent, kw):
    """The loss and its vector-Jacobian product w.r.t. both images (one compile per configuration)."""
    value, vjp = jax.vjp(lambda a, b: loss(a, b, **kw), x, y)
    return value, vjp(cotangent.astype(value.dtype))


def check_jax_equals_torch(name, shape, colorspace, luminance, reduction, shift, pair, seed):
    metric = registry.lookup(name)
    n, h, w = shape
    cs, channels = ("rgb", 3) if colorspace == "RGB" else ("grey", int(colorspace[-1]))
    config = LossConfig(
        name=name, colorspace=cs, reduction=reduction, deterministic=True, luminance=luminance
    )
    rng = np.random.default_rng(seed)
    image_size = (3, h, w)
    params = random_params(metric, cs, image_size, rng)
    x, y = image_pair(pair, n, h, w, channels, rng)
    kw = {"shift": shift} if metric.random_shift else {}

    with jax.enable_x64(True):
        constants = None
        if metric.sized:
            constants = Constants(
                {"log_partition": {k: log_partition_table()[k] for k in ("values", "tangents")}}
            )
        jax_loss = Loss(jax.tree.map(jnp.asarray, params), config, constants)
        cotangent = np.linspace(0.5, 1.5, n) if reduction == "none" else 1.0
        value, (gx, gy) = value_and_vjp(jax_loss, jnp.asarray(x), jnp.asarray(y), jnp.asarray(cotangent), kw)

    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    ty = torch.tensor(y.transpose(0, 3, 1, 2), requires_grad=True)
    tvalue = torch_loss(config, params, image_size)(tx, ty, **kw)
    (tvalue * torch.as_tensor(cotangent, dtype=torch.float64)).sum().backward()

    assert value.dtype == jnp.float64 and tvalue.dtype == torch.float64
    # Float64 rounding of two summation orders: measured (2026-12-08, 120 random draws over every option
    # and pair kind) value errors ≤ 8.6e-12 relative (Watson-DFT; L1 6.1e-12) and gradient errors ≤ 5.5e-10
    # relative L2 (Watson-DCT). rtol 1e-9 and 1e-7 leave room for another CPU's rounding; the mutation
    # tried (ε dropped from L̄ + ε in the luminance masking) moved a value by 1.3e-2.
    np.testing.assert_allclose(np.asarray(value), tvalue.detach().numpy(), rtol=1e-9, atol=VALUE_FLOOR)
    for wrt, got, want in (("x", gx, tx.grad), ("y", gy, ty.grad)):
        got, want = np.asarray(got), want.numpy().transpose(0, 2, 3, 1)
        assert np.all(np.isfinite(got)) and np.all(np.isfinite(want))
        if pair == "identical" and name != "SSIM":
            # x == y is the minimum of every loss but SSIM (whose gradient there is rounding noise):
            # both sides give exactly 0, not a small number.
            assert np.all(got == 0) and np.all(want == 0)
        if pair == "constant" and name == "Watson-DCT" and wrt == "y":
            # A constant target's AC DCT coefficients are rounding noise (~1e-17) of either sign, where
            # the contrast masking (|c| + ε)^w has its kink: d/dy follows the noise's sign, ~ε^(w−1)
            # large, and differs between any two implementations (measured: ‖Δ‖ ≈ ‖g‖ on every seed).
            # Not a defined gradient, so finite is all that holds; d/dx (the one training uses) is
            # compared. Watson-DFT's amplitudes of the same noise agree.
            continue
        rtol = 1e-7  # measured ≤ 5.5e-10 (comment above the value check)
        if pair == "black" and name == "Watson-DCT" and wrt == "y":
            # At a black target log((DC + ε)/(L̄ + ε)) has slopes 1/ε = 1e10 in DC and in L̄ that cancel:
            # float64 leaves 1e10 · 2.2e-16 ≈ 2e-6 of the other terms on each side. Measured ‖Δ‖/‖g‖
            # 3e-7…7.2e-6 over 6 seeds × 3 colour spaces (0 when x is black too, 0 for Watson-DFT,
            # whose DC amplitude |·| has its kink at 0 and no such slope) → 5e-5.
            rtol = 5e-5
        error, size = np.linalg.norm(got - want), np.linalg.norm(want)
        assert error <= rtol * size + GRAD_FLOOR, f"d/d{wrt}: ‖Δ‖ {error:.3g}, ‖g‖ {size:.3g}"


# Absolute floors where a relative bound means nothing (measured 2026-12-08 over SSIM's identical and
# near-identical pairs, 6 seeds × 3 shapes × 2 colour spaces × 2 reductions): SSIM's 1 − mean SSIM of a
# near-identical pair is ~1e-11 after cancelling against 1, and the two sides differ by up to 2.2e-15
# (ε of the mean ≈ 1); its gradient at x == y is rounding noise, ‖Δ‖ ≤ 7.9e-17 with ‖g‖ ≤ 5.1e-17. The
# floors are 5× and 12× those, far below any value or gradient of an independent pair.
VALUE_FLOOR = 1e-14
GRAD_FLOOR = 1e-15


def _examples(test):
    """The edge cases every run meets, whatever hypothesis draws."""
    for pair in PAIRS[1:]:
        test = example(
            shape=(2, 16, 24),
            colorspace="RGB",
            luminance="image",
            reduction="none",
            shift=(3, 5),
            pair=pair,
            seed=1,
        )(test)
    return example(
        shape=(1, 24, 24),
        colorspace="LA-1",
        luminance="batch",
        reduction="mean",
        shift=(0, 0),
        pair="black",
        seed=2,
    )(test)


@pytest.mark.parametrize("name", NAMES)
def test_jax_equals_torch(name):
    @settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @_examples
    @given(
        shape=shapes(name),
        colorspace=st.sampled_from(["RGB", "LA-1", "LA-3"]),
        luminance=st.sampled_from(["image", "batch"]),
        reduction=st.sampled_from(["none", "sum", "mean"]),
        shift=st.tuples(st.integers(0, 7), st.integers(0, 7)),
        pair=st.sampled_from(PAIRS),
        seed=st.integers(0, 2**16),
    )
    def run(**kw):
        check_jax_equals_torch(name, **kw)

    run()
