"""The JAX losses against the project's PyTorch implementation on random inputs, sizes (multiples of 8,
non-square), colour spaces, options and random parameters (hypothesis, 30 examples per loss): values and
gradients w.r.t. both images.

Both sides compute in float64, where the two independent implementations must agree to rounding
(values rtol 1e-9, gradients relative L2 1e-7); float32 against the golden files is in the parity tests.
JAX runs op by op here (no jit), so new shapes cost no compilation of whole programs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import original_weights
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watson_jax import Loss, partition, registry
from watson_jax import torch as wtorch
from watson_jax.provider import Constants, LossConfig

NAMES = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT", "Adaptive"]
# (N, H, W): one image or two, square and non-square. A few shapes only: op-by-op JAX compiles each
# primitive once per shape, and that, not the arithmetic, is the cost of this test.
SHAPES = st.sampled_from([(1, 8, 16), (2, 24, 8)])


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


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=SHAPES,
    colorspace=st.sampled_from(["RGB", "LA-1", "LA-3"]),
    luminance=st.sampled_from(["image", "batch"]),
    reduction=st.sampled_from(["none", "sum", "mean"]),
    shift=st.tuples(st.integers(0, 7), st.integers(0, 7)),
    seed=st.integers(0, 2**16),
)
def test_jax_equals_torch(name, shape, colorspace, luminance, reduction, shift, seed):
    metric = registry.lookup(name)
    n, h, w = shape
    cs, channels = ("rgb", 3) if colorspace == "RGB" else ("grey", int(colorspace[-1]))
    config = LossConfig(
        name=name, colorspace=cs, reduction=reduction, deterministic=True, luminance=luminance
    )
    rng = np.random.default_rng(seed)
    image_size = (3, h, w)
    params = random_params(metric, cs, image_size, rng)
    x = rng.uniform(size=(n, h, w, channels))
    y = rng.uniform(size=(n, h, w, channels))
    kw = {"shift": shift} if metric.random_shift else {}

    with jax.enable_x64(True):
        constants = None
        if metric.sized:
            constants = Constants(
                {"log_partition": {k: log_partition_table()[k] for k in ("values", "tangents")}}
            )
        jax_loss = Loss(jax.tree.map(jnp.asarray, params), config, constants)
        cotangent = np.linspace(0.5, 1.5, n) if reduction == "none" else 1.0
        value, vjp = jax.vjp(lambda a, b: jax_loss(a, b, **kw), jnp.asarray(x), jnp.asarray(y))
        gx, gy = vjp(jnp.asarray(cotangent, jnp.float64))

    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    ty = torch.tensor(y.transpose(0, 3, 1, 2), requires_grad=True)
    tvalue = torch_loss(config, params, image_size)(tx, ty, **kw)
    (tvalue * torch.as_tensor(cotangent, dtype=torch.float64)).sum().backward()

    assert value.dtype == jnp.float64 and tvalue.dtype == torch.float64
    np.testing.assert_allclose(np.asarray(value), tvalue.detach().numpy(), rtol=1e-9)
    for got, want in ((gx, tx.grad), (gy, ty.grad)):
        want = want.numpy().transpose(0, 2, 3, 1)
        assert np.linalg.norm(np.asarray(got) - want) <= 1e-7 * np.linalg.norm(want)
