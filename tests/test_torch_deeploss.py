"""watson_jax.torch's Deeploss-VGG and Deeploss-Squeeze (docs/reference.md §8): parity with
../shared/golden (random
backbones of seed 0 with the original trained heads), the reference's head-file layout, float64, gradients
at dead ReLUs and constant images, the precision option, and agreement with the JAX loss (directly and
through the DLPack bridge).

Tolerances (golden README): float32 values rtol 1e-4, gradients per pair relative L2 ≤
max(1e-4, 3·grad_input_f32_noise[i]); float64 values rtol 1e-6 and gradients relative L2 ≤ 1e-6. VGG16 is
heavy on a 2-core CPU: every test does at most one forward/backward pass per configuration, at most 4 pairs
of 64×64 images.
"""

import functools
import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from helpers import load_golden, original_weights, rel_l2, shared  # noqa: E402

import watson_jax  # noqa: E402
from watson_jax import InputError, MissingWeightsError, WeightsError  # noqa: E402
from watson_jax.losses.deeploss import BACKBONES  # noqa: E402
from watson_jax.provider import make_config  # noqa: E402
from watson_jax.torch import (  # noqa: E402
    Deeploss,
    LossProvider,
    from_jax,  # noqa: E402
)
from watson_jax.torch import deeploss as torch_deeploss  # noqa: E402
from watson_jax.weights import flatten  # noqa: E402

PROVIDER = LossProvider()
METRICS = ["Deeploss-VGG", "Deeploss-Squeeze"]
STEMS = {"Deeploss-VGG": "vgg", "Deeploss-Squeeze": "squeeze"}
GOLDEN_FILES = [(f"deeploss_{stem}_{cs}", name) for name, stem in STEMS.items() for cs in ("rgb", "la")]
VALUE_RTOL, GRAD_RTOL, F64_RTOL = 1e-4, 1e-4, 1e-6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the random backbones of the golden files ----------------------------------------------------------


@functools.cache
def random_backbone(name: str) -> dict:
    """The seed-0 backbone of ``random_backbones.py`` (torchvision keys, OIHW) as watson_jax's pytree
    {'features.<i>[.<part>]': {'kernel': HWIO, 'bias': (O,)}}."""
    spec = importlib.util.spec_from_file_location("random_backbones", shared("golden", "random_backbones.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    draw = module.vgg16_features if name == "Deeploss-VGG" else module.squeezenet1_1_features
    tree = {}
    for key, value in draw(0).items():
        layer, kind = key.rsplit(".", 1)
        tree.setdefault(layer, {})[{"weight": "kernel", "bias": "bias"}[kind]] = (
            np.transpose(value, (2, 3, 1, 0)) if kind == "weight" else value
        )
    return tree


def head_file(name: str, colorspace: str):
    return original_weights(
        f"{'rgb' if colorspace.lower() == 'rgb' else 'gray'}_pnet_lin_{STEMS[name]}_trial0.pth"
    )


def build(
    name: str,
    colorspace: str = "RGB",
    *,
    reduction: str = "none",
    params=None,
    precision: str = "highest",
) -> Deeploss:
    config = make_config(name, colorspace, reduction, True, "image", precision)
    return Deeploss(config, params, random_backbone(name)).eval()


def pretrained(name: str, colorspace: str, **kw) -> Deeploss:
    """The golden files' loss: random backbone, the original heads loaded strictly, frozen."""
    return build(name, colorspace, **kw).load_reference(head_file(name, colorspace)).requires_grad_(False)


def golden_tensors(g, dtype):
    return (
        torch.tensor(g["input"], dtype=dtype).requires_grad_(True),
        torch.tensor(g["target"], dtype=dtype),
    )


def per_image_and_grad(loss, x, y):
    """(loss(x, y) with reduction 'none', gradient of its sum w.r.t. x) — one forward/backward pass."""
    value = loss(x, y)
    value.sum().backward()
    return value.detach().numpy(), x.grad.numpy()


# -- golden parity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("golden_name,name", GOLDEN_FILES)
def test_golden_float32(golden_name, name):
    g = load_golden(golden_name)
    assert int(g["backbone_seed"]) == 0
    loss = pretrained(name, str(g["colorspace"]))
    x, y = golden_tensors(g, torch.float32)
    value, grad = per_image_and_grad(loss, x, y)
    assert value.dtype == np.float32 and value.shape == (len(x),) and grad.shape == x.shape

    i = int(g["identical_pair_index"])
    want = g["value_none"].reshape(-1)
    others = [p for p in range(len(want)) if p != i]
    np.testing.assert_allclose(value[others], want[others], rtol=VALUE_RTOL)
    np.testing.assert_allclose(value.sum(), g["value_sum"], rtol=VALUE_RTOL)
    # Identical images get identical features (same program, same input): exactly 0.
    assert value[i] == 0 and np.all(grad[i] == 0)
    for p in others:
        tolerance = max(GRAD_RTOL, 3 * g["grad_input_f32_noise"][p])
        assert rel_l2(grad[p], g["grad_input"][p]) <= tolerance, (
            p,
            rel_l2(grad[p], g["grad_input"][p]),
        )
        # The float32 gradient is also close to the float64 one (no max-pool argmax flip; see the README
        # on pair 0 RGB of VGG, whose f32 noise is large).
        assert rel_l2(grad[p], g["grad_input_f64"][p]) <= max(GRAD_RTOL, 4 * g["grad_input_f32_vs_f64"][p])


@pytest.mark.parametrize("golden_name,name", GOLDEN_FILES)
def test_golden_float64(golden_name, name):
    """A module made float64 with .double() on float64 inputs: values rtol 1e-6, gradients rel. L2 ≤ 1e-6."""
    g = load_golden(golden_name)
    loss = pretrained(name, str(g["colorspace"])).double()
    assert loss.features.get_submodule("0").weight.dtype == torch.float64  # the buffers moved too
    x, y = golden_tensors(g, torch.float64)
    value, grad = per_image_and_grad(loss, x, y)
    assert value.dtype == np.float64 and grad.dtype == np.float64
    i = int(g["identical_pair_index"])
    np.testing.assert_allclose(value, g["value_none_f64"].reshape(-1), rtol=F64_RTOL, atol=1e-15)
    np.testing.assert_allclose(value.sum(), g["value_sum_f64"], rtol=F64_RTOL)
    assert value[i] == 0 and np.all(grad[i] == 0)
    for p in range(len(x)):
        if p != i:
            assert rel_l2(grad[p], g["grad_input_f64"][p]) <= F64_RTOL


def test_float64_inputs_widen_float32_parameters():
    """float64 inputs with a float32 module compute in float64, as a .double() module does."""
    g = load_golden("deeploss_squeeze_rgb")
    loss = pretrained("Deeploss-Squeeze", "RGB")
    x, y = (torch.tensor(g[k][:2, :, :32, :48], dtype=torch.float64) for k in ("input", "target"))
    with torch.no_grad():
        widened = loss(x, y)
        doubled = loss.double()(x.float(), y.float())
    assert widened.dtype == doubled.dtype == torch.float64
    np.testing.assert_allclose(widened.numpy(), doubled.numpy(), rtol=1e-12)


# -- finite gradients ------------------------------------------------------------------------------------


def test_unit_normalise_has_a_finite_gradient_at_zero():
    f = torch.tensor([[[[0.0, 1.0]], [[0.0, 2.0]]]], dtype=torch.float64, requires_grad=True)  # (1, 2, 1, 2)
    n = torch_deeploss.unit_normalise(f)
    expected = f.detach() / (torch.sqrt((f.detach() ** 2).sum(1, keepdim=True)) + 1e-10)
    assert torch.equal(n.detach(), expected)
    (n * torch.tensor([1.0, -3.0], dtype=torch.float64).view(1, 2, 1, 1)).sum().backward()
    assert torch.isfinite(f.grad).all()
    # At f = 0 the derivative is that of f / (0 + ε).
    np.testing.assert_allclose(f.grad[0, :, 0, 0].numpy(), [1e10, -3e10])


@pytest.mark.parametrize("name", METRICS)
def test_constant_black_and_identical_images(name):
    """Identical pairs give 0 and a zero gradient; black and constant images finite gradients."""
    h, w = 32, 40
    black, grey = torch.zeros(3, h, w), torch.full((3, h, w), 0.5)
    noise = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    x = torch.stack([black, grey, black, grey]).requires_grad_(True)
    y = torch.stack([black, grey, grey, noise])
    value, grad = per_image_and_grad(pretrained(name, "RGB"), x, y)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    assert value[0] == value[1] == 0 and np.all(grad[:2] == 0)
    assert np.all(value[2:] > 0) and np.all(np.abs(grad[2:]).sum(axis=(1, 2, 3)) > 0)


# -- the reference's layout, load_reference, the provider ------------------------------------------------


@pytest.mark.parametrize("colorspace", ["RGB", "LA"])
@pytest.mark.parametrize("name", METRICS)
def test_state_dict_is_the_reference_head_file(name, colorspace):
    reference = torch.load(head_file(name, colorspace), map_location="cpu", weights_only=True)
    loss = build(name, colorspace)
    state = loss.state_dict()
    assert list(state) == list(reference) == [f"lin{k}.model.1.weight" for k in range(len(reference))]
    for key, value in reference.items():
        assert (state[key].shape, state[key].dtype) == (value.shape, value.dtype), key
    assert [k for k, _ in loss.named_parameters()] == list(reference)
    assert all(torch.equal(v, torch.ones_like(v)) for v in state.values())  # untuned: heads of ones
    # The backbone: non-persistent buffers under torchvision's names.
    buffers = dict(loss.named_buffers())
    assert sorted(k for k in buffers if k.startswith("features.")) == sorted(
        f"{layer}.{part}" for layer in BACKBONES[name].layout for part in ("weight", "bias")
    )
    np.testing.assert_array_equal(
        buffers["features.0.weight"].numpy(),
        random_backbone(name)["features.0"]["kernel"].transpose(3, 2, 0, 1),
    )

    assert loss.load_reference(head_file(name, colorspace)) is loss
    assert all(torch.equal(v, reference[k]) for k, v in loss.state_dict().items())
    heads = loss.jax_params()
    assert sorted(heads) == [f"lin{k}" for k in range(len(reference))]
    for key, value in reference.items():
        np.testing.assert_array_equal(heads[key.split(".")[0]], value.numpy().reshape(-1))
    loss.load_state_dict(reference, strict=True)  # plain strict loading works too


def test_load_reference_refuses_other_files(tmp_path):
    loss = build("Deeploss-Squeeze")
    with pytest.raises(WeightsError, match="missing keys"):
        loss.load_reference(head_file("Deeploss-VGG", "RGB"))
    with pytest.raises(WeightsError, match="unexpected keys"):
        loss.load_reference(original_weights("rgb_watson_dct_trial0.pth"))
    state = torch.load(head_file("Deeploss-Squeeze", "RGB"), weights_only=True)
    state["lin3.model.1.weight"] = state["lin3.model.1.weight"][:, :10]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(WeightsError, match="shape"):
        loss.load_reference(tmp_path / "short.pth")
    state = torch.load(head_file("Deeploss-Squeeze", "RGB"), weights_only=True)
    state["lin0.model.1.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(WeightsError, match="finite"):
        loss.load_reference(tmp_path / "nan.pth")
    assert torch.equal(loss.lin0.weight, torch.ones_like(loss.lin0.weight))  # nothing was loaded


def test_backbone_is_checked():
    config = make_config("Deeploss-Squeeze", "RGB", "none", True, "image")
    backbone = dict(random_backbone("Deeploss-Squeeze"))
    with pytest.raises(WeightsError, match="backbone"):
        Deeploss(config, None, None)
    del backbone["features.12.expand3x3"]
    with pytest.raises(WeightsError, match="missing parameters"):
        Deeploss(config, None, backbone)
    with pytest.raises(WeightsError, match="shape"):
        Deeploss(
            config,
            None,
            {
                **random_backbone("Deeploss-Squeeze"),
                "features.0": random_backbone("Deeploss-VGG")["features.2"],
            },
        )


@pytest.mark.parametrize("name", METRICS)
def test_provider(name, converted_weights, tmp_path):
    loss = PROVIDER.get_loss_function(name, "LA", weights_dir=converted_weights)
    assert isinstance(loss, Deeploss) and not loss.training and loss.precision == "highest"
    assert loss.config.colorspace == "grey"
    assert not any(p.requires_grad for p in loss.parameters())  # pretrained heads come frozen
    assert not any(b.requires_grad for b in loss.buffers())
    reference = torch.load(head_file(name, "LA"), weights_only=True)
    assert all(torch.equal(v, reference[k]) for k, v in loss.state_dict().items())
    expected = random_backbone(name)
    for layer in expected:
        np.testing.assert_array_equal(
            loss.get_submodule(layer).weight.numpy(),
            expected[layer]["kernel"].transpose(3, 2, 0, 1),
            err_msg=layer,
        )

    # The heads are the converted ones the JAX loss reads.
    jax_heads = watson_jax.LossProvider().get_loss_function(name, "LA", weights_dir=converted_weights).params
    ours, theirs = flatten(loss.jax_params()), flatten(jax_heads)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        np.testing.assert_array_equal(ours[key], np.asarray(theirs[key]), err_msg=key)

    untuned = PROVIDER.get_loss_function(
        name, pretrained=False, precision="default", weights_dir=converted_weights
    )
    assert untuned.precision == "default" and "precision='default'" in repr(untuned)
    assert all(p.requires_grad and torch.equal(p, torch.ones_like(p)) for p in untuned.parameters())
    with pytest.raises(MissingWeightsError, match="backbone"):
        PROVIDER.get_loss_function(name, pretrained=False, weights_dir=tmp_path)
    assert name in PROVIDER.available()


def test_modes_and_greyscale(converted_weights):
    """Greyscale: 3 channels are converted to grey, 1 channel replicated; train() is the tuning mode, with
    dropout on the heads' inputs; the reductions; untuned heads get gradients."""
    g = load_golden("deeploss_squeeze_rgb")
    x, y = (torch.tensor(g[k][:, :, :32, :48]) for k in ("input", "target"))
    grey = lambda t: (t[:, 0:1] * 0.3 + t[:, 1:2] * 0.59) + t[:, 2:3] * 0.11  # noqa: E731
    loss = pretrained("Deeploss-Squeeze", "LA")
    with torch.no_grad():
        per_image = loss(x, y)
        # Exact: the library converts with these eager torch operations in this order (each rounded
        # separately, nothing contracted), so the backbone sees the same bits.
        np.testing.assert_array_equal(per_image.numpy(), loss(grey(x), grey(y)).numpy())
        dropped = [loss.train()(x, y, torch.Generator().manual_seed(s)).numpy() for s in (0, 0, 1)]
        loss.eval()
        np.testing.assert_array_equal(dropped[0], dropped[1])  # the generator decides the mask
        assert not np.allclose(dropped[0], dropped[2]) and not np.allclose(dropped[0], per_image.numpy())
        # Dropout with survivors × 2 keeps the expectation: the mean over masks approaches the value.
        masks = np.mean([loss.train()(x, y, torch.Generator().manual_seed(s)).numpy() for s in range(64)], 0)
        loss.eval()
        np.testing.assert_allclose(masks, per_image.numpy(), rtol=0.05)
        for reduction, expected in (("sum", per_image.sum()), ("mean", per_image.mean())):
            reduced = pretrained("Deeploss-Squeeze", "LA", reduction=reduction)(x, y)
            np.testing.assert_allclose(reduced.numpy(), expected.numpy(), rtol=1e-6)
    untuned = PROVIDER.get_loss_function("Deeploss-Squeeze", pretrained=False, weights_dir=converted_weights)
    untuned(x, y).backward()
    for key, p in untuned.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", METRICS)
def test_too_small_images_are_refused(name):
    size = BACKBONES[name].min_size
    loss = build(name)
    small = torch.rand(1, 3, size - 1, size + 4)
    with pytest.raises(InputError, match=f"at least {size}x{size}"):
        loss(small, small)
    with torch.no_grad():
        assert torch.isfinite(loss(*torch.rand(2, 1, 3, size, size))).all()  # the smallest size works


# -- precision ---------------------------------------------------------------------------------------------


def test_full_float32_sets_and_restores_the_flags():
    handles = torch_deeploss._precision_handles()
    # pyproject allows torch>=2.1: before 2.9 there is no fp32_precision API and the legacy flags are used.
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 9):
        flags = torch.backends.cudnn, torch.backends.cuda.matmul
        before = [f.allow_tf32 for f in flags]
        with torch_deeploss.full_float32():
            assert not any(f.allow_tf32 for f in flags)
        assert [f.allow_tf32 for f in flags] == before
        return
    assert handles, "torch >= 2.9 has the fp32_precision API"
    before = [h.fp32_precision for h in handles]
    with torch_deeploss.full_float32():
        assert all(h.fp32_precision == "ieee" for h in handles)
    assert [h.fp32_precision for h in handles] == before
    with pytest.raises(ZeroDivisionError), torch_deeploss.full_float32():
        1 / 0
    assert [h.fp32_precision for h in handles] == before


def test_full_float32_convolution_and_its_gradient():
    """The 'highest' convolution is F.conv2d, forward and backward (gradcheck in float64)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.rand(3, 2, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.rand(3, dtype=torch.float64, generator=gen, requires_grad=True)
    for stride, padding in ((1, 1), (2, 0)):
        conv = functools.partial(torch_deeploss.conv2d, stride=stride, padding=padding)
        assert torch.autograd.gradcheck(conv, (x, w, b), fast_mode=True)
        assert torch.autograd.gradcheck(conv, (x, w.detach()), fast_mode=True)
        assert torch.equal(conv(x, w, b), torch.nn.functional.conv2d(x, w, b, stride, padding))
    # Second derivatives and torch.func transforms work through it too.
    assert torch.autograd.gradgradcheck(conv, (x, w, b), fast_mode=True)
    square = lambda f: lambda a: f(a, w.detach(), b.detach(), stride=2, padding=0).square().sum()  # noqa: E731
    grads = [
        torch.func.vmap(torch.func.grad(square(f)))(x.detach()[:, None])
        for f in (torch_deeploss.conv2d, torch.nn.functional.conv2d)
    ]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=0)


def test_precision_highest_covers_the_backward(monkeypatch):
    """'highest' enters full_float32 in every convolution's forward and backward; 'default' never; on the
    CPU both give the same numbers."""
    entered = []
    original = torch_deeploss.full_float32

    def counting():
        entered.append(torch.is_grad_enabled())
        return original()

    monkeypatch.setattr(torch_deeploss, "full_float32", counting)
    g = load_golden("deeploss_squeeze_rgb")
    results = {}
    for precision in ("highest", "default"):
        entered.clear()
        x, y = (torch.tensor(g[k][:2, :, :32, :32]) for k in ("input", "target"))
        x.requires_grad_(True)
        results[precision] = per_image_and_grad(
            pretrained("Deeploss-Squeeze", "RGB", precision=precision), x, y
        )
        backbone, heads = 1 + 3 * 8, 7  # features.0, three per Fire module; seven heads
        # Forward: the backbone once per image batch, then the heads; backward: x's branch only.
        assert len(entered) == (2 * backbone + heads + backbone + heads if precision == "highest" else 0)
    for a, b in zip(results["highest"], results["default"]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# -- agreement with the JAX loss ---------------------------------------------------------------------------
# float64, 2 pairs of 40×56 images, random heads: values rtol 1e-9, gradients w.r.t. both images relative
# L2 ≤ 1e-7 (as tests/test_torch_vs_jax.py). Compiling a backbone's forward and backward is the cost here
# (10-40 s on a loaded 2-core machine), so there is one compiled program per backbone: VGG directly,
# SqueezeNet (greyscale, one channel) through the DLPack bridge.


def random_case(name, channels, seed=1):
    rng = np.random.default_rng(seed)
    heads = {
        f"lin{i}": rng.uniform(0, 2, c).astype(np.float32) for i, c in enumerate(BACKBONES[name].channels)
    }
    x = rng.uniform(size=(2, channels, 40, 56))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    return heads, x, y, np.array([0.7, 1.3])


def torch_value_and_grads(loss, x, y, cotangent):
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    value = loss(tx, ty)
    (value * torch.as_tensor(cotangent, dtype=value.dtype)).sum().backward()
    return value, tx.grad, ty.grad


def assert_agree(value, grads, want_value, want_grads):
    assert value.dtype == want_value.dtype == torch.float64
    np.testing.assert_allclose(value.detach().numpy(), want_value.detach().numpy(), rtol=1e-9)
    for got, want in zip(grads, want_grads):
        assert rel_l2(got.numpy(), want.numpy()) <= 1e-7


def test_jax_equals_torch(converted_weights):
    name = "Deeploss-VGG"
    heads, x, y, cotangent = random_case(name, 3)
    with jax.enable_x64(True):
        jax_loss = watson_jax.LossProvider().get_loss_function(
            name, reduction="none", weights_dir=converted_weights
        )
        jax_loss = jax_loss.replace(jax.tree.map(jnp.asarray, heads))

        @jax.jit
        def value_and_grads(loss, a, b):
            value, vjp = jax.vjp(lambda a_, b_: loss(a_, b_), a, b)
            return value, vjp(jnp.asarray(cotangent))

        nhwc = lambda a: jnp.asarray(a.transpose(0, 2, 3, 1))  # noqa: E731
        value, grads = value_and_grads(jax_loss, nhwc(x), nhwc(y))
        nchw = lambda a: torch.from_numpy(np.asarray(a).transpose(0, 3, 1, 2).copy())  # noqa: E731
        value, grads = torch.from_numpy(np.array(value)), [nchw(g) for g in grads]

    loss = build(name, params=heads)
    want_value, *want_grads = torch_value_and_grads(loss, x, y, cotangent)
    assert_agree(value, grads, want_value, want_grads)
    np.testing.assert_array_equal(loss.jax_params()["lin1"], heads["lin1"])


def test_bridge_runs_the_jax_loss(converted_weights):
    """from_jax on a JAX Deeploss: its backbone travels as the pytree's ``frozen`` child, gradients come back
    through torch's autograd."""
    name = "Deeploss-Squeeze"
    heads, x, y, cotangent = random_case(name, 1)
    with jax.enable_x64(True):
        jax_loss = watson_jax.LossProvider().get_loss_function(
            name, "LA", reduction="none", weights_dir=converted_weights
        )
        assert jax.tree.leaves(jax_loss.frozen)  # the backbone is a child of the pytree
        bridged = from_jax(jax_loss.replace(jax.tree.map(jnp.asarray, heads)))
        value, *grads = torch_value_and_grads(bridged, x, y, cotangent)
    assert value.shape == (2,)
    want_value, *want_grads = torch_value_and_grads(build(name, "LA", params=heads), x, y, cotangent)
    assert_agree(value, grads, want_value, want_grads)
