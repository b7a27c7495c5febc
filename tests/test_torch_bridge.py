"""The DLPack bridge runs JAX losses inside PyTorch autograd; checked against the torch implementation."""

import jax
import numpy as np
import pytest
import torch

import watson_jax
from watson_jax import InputError
from watson_jax import torch as wtorch

NAMES = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT", "Adaptive"]

# Bridged JAX loss against the torch implementation, 2×3×16×24 float32 images, both reductions
# (measured 2026-12-07 on the 2-core Xeon; max over 'sum' and 'none', x and y):
# values max relative error 4.9e-7 (L2 'sum'; float32 summation order) → rtol 2e-6 (4×).
VALUE_RTOL = 2e-6
# Gradients, relative L2 error per argument: L1 0 (a sign times the cotangent is exact in any order: a
# property of the maths); L2 measured 0 (2·(x − y)·w rounds once whichever order, but a fused or
# reassociated kernel may differ by an ulp: 1e-6); SSIM 5.4e-7; Watson-DCT 9.3e-6 (gy, the masking
# reference); Watson-DFT 3.6e-4 (float32 conditioning of the phase term, golden README); Adaptive 1.8e-7.
GRAD_RTOL = {
    "L1": 0.0,
    "L2": 1e-6,
    "SSIM": 4e-6,
    "Watson-DCT": 5e-5,
    "Watson-DFT": 2e-3,
    "Adaptive": 1e-6,
}


def tensors(n=2, c=3, h=16, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g), torch.rand(n, c, h, w, generator=g)


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward_match_the_torch_implementation(name, reduction, converted_weights):
    kw = dict(
        colorspace="RGB",
        reduction=reduction,
        deterministic=True,
        weights_dir=converted_weights,
        image_size=(3, 16, 24),
        pretrained=name != "Adaptive",
    )  # Adaptive's weights are for 64×64
    bridged = wtorch.from_jax(watson_jax.LossProvider().get_loss_function(name, **kw))
    reference = wtorch.LossProvider().get_loss_function(name, **kw)
    x, y = tensors()
    xb, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yb, yr = y.clone().requires_grad_(), y.clone().requires_grad_()
    out_b, out_r = bridged(xb, yb), reference(xr, yr)
    assert out_b.shape == out_r.shape and out_b.dtype == torch.float32
    np.testing.assert_allclose(out_b.detach().numpy(), out_r.detach().numpy(), rtol=VALUE_RTOL)
    weights = torch.linspace(0.5, 1.5, out_b.numel()).reshape(out_b.shape)  # a non-trivial cotangent
    (out_b * weights).sum().backward()
    (out_r * weights).sum().backward()
    for got, want in ((xb.grad, xr.grad), (yb.grad, yr.grad)):
        rel = float(torch.linalg.norm(got - want) / torch.linalg.norm(want))
        assert rel <= GRAD_RTOL[name], rel


def test_random_shift_is_seeded_by_torch():
    bridged = wtorch.from_jax(watson_jax.LossProvider().get_loss_function("Watson-DCT", pretrained=False))
    x, y = tensors()
    a = bridged(x, y, torch.Generator().manual_seed(1))
    b = bridged(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    values = {float(bridged(x, y, torch.Generator().manual_seed(s))) for s in range(8)}
    assert len(values) > 1
    fixed = bridged(x, y, shift=(4, 4))
    plain = wtorch.from_jax(
        watson_jax.LossProvider().get_loss_function("Watson-DCT", pretrained=False, deterministic=True)
    )(x, y)
    assert torch.allclose(fixed, plain)


def test_a_torch_training_step_through_the_bridge():
    bridged = wtorch.from_jax(watson_jax.LossProvider().get_loss_function("Watson-DFT", pretrained=False))
    x, y = tensors()
    logits = torch.nn.Parameter(torch.zeros_like(x))
    opt = torch.optim.SGD([logits], lr=1e-3)
    with torch.no_grad():
        before = float(bridged(torch.sigmoid(logits), y, shift=(4, 4)))
    for _ in range(3):
        opt.zero_grad()
        bridged(torch.sigmoid(logits), y, torch.Generator().manual_seed(0)).backward()
        opt.step()
    assert torch.isfinite(logits).all()
    with torch.no_grad():
        assert float(bridged(torch.sigmoid(logits), y, shift=(4, 4))) < before


def test_float64_needs_x64_and_then_computes_in_float64():
    bridged = wtorch.from_jax(watson_jax.LossProvider().get_loss_function("SSIM"))
    x, y = tensors()
    with pytest.raises(InputError, match="64-bit"):
        bridged(x.double(), y.double())
    with jax.enable_x64(True):
        assert bridged(x.double(), y.double()).dtype == torch.float64


def test_from_jax_rejects_other_objects():
    with pytest.raises(TypeError, match="watson_jax Loss"):
        wtorch.from_jax(wtorch.LossProvider().get_loss_function("L1"))


def test_inputs_are_checked_in_torch_terms():
    bridged = wtorch.from_jax(watson_jax.LossProvider().get_loss_function("Watson-DCT", pretrained=False))
    x, y = tensors()
    with pytest.raises(InputError, match="shift must be a pair"):
        bridged(x, y, shift=(9, 9))
    with pytest.raises(InputError, match="input has 4 channels"):
        bridged(torch.rand(2, 4, 16, 16), torch.rand(2, 4, 16, 16))


def test_without_gradients_and_second_order():
    bridged = wtorch.from_jax(watson_jax.LossProvider().get_loss_function("L2", reduction="none"))
    x, y = tensors()
    with torch.no_grad():
        plain = bridged(x, y)
    assert not plain.requires_grad
    xg = x.clone().requires_grad_()
    out = bridged(xg, y)
    assert torch.allclose(plain, out.detach())
    weights = torch.ones_like(out, requires_grad=True)  # e.g. a gradient penalty differentiates twice
    with pytest.raises(RuntimeError, match="once_differentiable"):
        (grad,) = torch.autograd.grad((out * weights).sum(), xg, create_graph=True)
        grad.sum().backward()


def test_elementwise_maps_through_the_bridge():
    x, y = tensors()
    bridged = wtorch.from_jax(watson_jax.LossProvider().get_loss_function("L1"))(x, y, elementwise=True)
    assert bridged.shape == x.shape
    assert torch.allclose(bridged, (x - y).abs())


def test_spatial_maps_cross_the_bridge():
    loss = watson_jax.LossProvider().get_loss_function("Watson-DCT", pretrained=False, deterministic=False)
    x, y = tensors()
    got = wtorch.from_jax(loss)(x, y, spatial=True)  # no random shift, so no seed is drawn
    want = loss(np.transpose(x.numpy(), (0, 2, 3, 1)), np.transpose(y.numpy(), (0, 2, 3, 1)), spatial=True)
    assert got.shape == (2, 16, 24)
    np.testing.assert_allclose(got.numpy(), np.asarray(want), rtol=1e-6)
