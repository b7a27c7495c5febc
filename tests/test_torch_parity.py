"""Parity of watson_jax.torch (the plain PyTorch implementation) with ../shared/golden.

The same cases, rules and tolerances as test_parity.py (the JAX side), on NCHW torch tensors: float32
values and input gradients, 'image' luminance against each pair alone, the initial Watson parameters, the
64 shift offsets, float64. Plus the Watson modules' state-dict layout against the reference weight files.
Adaptive has its own section (map-valued, per image size, its own state-dict layout).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import check_adaptive_float64_map_and_gradient, load_golden, nhwc, original_weights, rel_l2  # noqa: E402
from test_parity import (  # noqa: E402
    CASES,
    F64_RTOL,
    PER_IMAGE_CASES,
    SHIFT_RTOL,
    VALUE_RTOL,
    VALUE_RTOL_INIT,
    WATSON_CASES,
    batch_reduction,
    check_gradients,
    check_values,
    expected_per_image,
)

# Adaptive is tested in its own section below (image size per file, maps), not by the generic tests.
CASES, PER_IMAGE_CASES, WATSON_CASES = (
    [c for c in cases if c[1] != "Adaptive"] for cases in (CASES, PER_IMAGE_CASES, WATSON_CASES)
)
from watson_jax import InputError, InputTypeError, OptionError, WeightsError  # noqa: E402
from watson_jax import LossProvider as JaxLossProvider  # noqa: E402
from watson_jax.torch import LossProvider  # noqa: E402
from watson_jax.weights import flatten  # noqa: E402

PROVIDER = LossProvider()
REFERENCE_FILES = {
    ("Watson-DCT", "RGB"): "rgb_watson_dct_trial0.pth",
    ("Watson-DCT", "LA"): "gray_watson_dct_trial0.pth",
    ("Watson-DFT", "RGB"): "rgb_watson_fft_trial0.pth",
    ("Watson-DFT", "LA"): "gray_watson_fft_trial0.pth",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(
    name,
    golden,
    *,
    pretrained,
    weights_dir=None,
    reduction="sum",
    luminance="batch",
    deterministic=True,
):
    return PROVIDER.get_loss_function(
        name,
        str(golden["colorspace"]),
        reduction=reduction,
        deterministic=deterministic,
        pretrained=pretrained,
        luminance=luminance,
        weights_dir=weights_dir,
    )


def tensors(golden, dtype=torch.float32):
    return torch.tensor(golden["input"], dtype=dtype), torch.tensor(golden["target"], dtype=dtype)


def value_and_grad(loss, x, y):
    """Loss value and its gradient w.r.t. the input x (NCHW numpy, as the golden arrays)."""
    x = x.clone().requires_grad_(True)
    value = loss(x, y)
    value.backward()
    return value.detach().numpy(), x.grad.numpy()


def forward(loss, x, y):
    with torch.no_grad():
        return loss(x, y).numpy()


@pytest.mark.parametrize("golden_name,name", CASES)
def test_pretrained_float32(golden_name, name, converted_weights):
    g = load_golden(golden_name)
    x, y = tensors(g)
    loss = build(name, g, pretrained=True, weights_dir=converted_weights, reduction=batch_reduction(name))
    value, grad = value_and_grad(loss, x, y)
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, g["value_sum"], rtol=VALUE_RTOL[name])
    check_gradients(name, g, nhwc(grad), g["grad_input"])  # check_gradients takes NHWC

    per_image = forward(
        build(name, g, pretrained=True, weights_dir=converted_weights, reduction="none"), x, y
    )
    assert per_image.shape == (len(x),)
    check_values(name, g, per_image, expected_per_image(g, "value_none"), VALUE_RTOL[name])


@pytest.mark.parametrize("golden_name,name", PER_IMAGE_CASES)
def test_image_luminance_matches_pairs_alone(golden_name, name, converted_weights):
    g = load_golden(golden_name)
    loss = build(name, g, pretrained=True, weights_dir=converted_weights, reduction="none", luminance="image")
    check_values(name, g, forward(loss, *tensors(g)), g["value_none_single"], VALUE_RTOL[name])


@pytest.mark.parametrize("golden_name,name", WATSON_CASES)
def test_initial_parameters_float32(golden_name, name):
    g = load_golden(golden_name)
    x, y = tensors(g)
    loss = build(name, g, pretrained=False)
    assert all(p.requires_grad for p in loss.parameters())  # untrained parameters are there to be tuned
    value, grad = value_and_grad(loss, x, y)
    np.testing.assert_allclose(value, g["value_sum_init"], rtol=VALUE_RTOL_INIT[name])
    check_gradients(name, g, nhwc(grad), g["grad_input_init"], suffix="_init")
    per_image = forward(build(name, g, pretrained=False, reduction="none"), x, y)
    check_values(name, g, per_image, g["value_none_init"], VALUE_RTOL_INIT[name])


@pytest.mark.parametrize("golden_name,name", WATSON_CASES)
def test_every_shift_offset(golden_name, name, converted_weights):
    """shift_values[sx, sy]: pair 0 alone, cropped at offset (sx along H, sy along W)."""
    g = load_golden(golden_name)
    loss = build(name, g, pretrained=True, weights_dir=converted_weights, deterministic=False)
    x, y = (t[:1] for t in tensors(g))
    with torch.no_grad():
        got = np.array([[loss(x, y, shift=(sx, sy)).item() for sy in range(8)] for sx in range(8)])
        drawn = loss(x, y, torch.Generator().manual_seed(3)).item()  # a random call draws one of the 64
    np.testing.assert_allclose(got, g["shift_values"], rtol=SHIFT_RTOL[name])
    assert np.min(np.abs(g["shift_values"] - drawn) / g["shift_values"]) <= SHIFT_RTOL[name]


@pytest.mark.parametrize("golden_name,name", CASES)
def test_float64(golden_name, name, converted_weights):
    """float64 inputs compute in float64 (float32 parameters widened): values rtol 1e-6, gradients relative
    L2 ≤ 1e-6 per pair. A Watson module made float64 with .double() gives the same numbers."""
    g = load_golden(golden_name)
    x, y = tensors(g, torch.float64)
    settings = [("", True)] + ([("_init", False)] if name.startswith("Watson") else [])
    for suffix, pretrained in settings:
        loss = build(
            name,
            g,
            pretrained=pretrained,
            weights_dir=converted_weights,
            reduction=batch_reduction(name),
        )
        value, grad = value_and_grad(loss, x, y)
        assert value.dtype == np.float64
        np.testing.assert_allclose(value, g[f"value_sum{suffix}_f64"], rtol=F64_RTOL)
        if name.startswith("Watson"):  # float64 parameters make the call float64
            np.testing.assert_allclose(forward(loss.double(), x.float(), y.float()), value, rtol=1e-12)
        if f"value_none{suffix}_f64" in g:
            per_image = forward(
                build(name, g, pretrained=pretrained, weights_dir=converted_weights, reduction="none"),
                x,
                y,
            )
            np.testing.assert_allclose(per_image, g[f"value_none{suffix}_f64"], rtol=F64_RTOL, atol=1e-12)
        if f"grad_input{suffix}_f64" in g:
            want = g[f"grad_input{suffix}_f64"]
            i = int(g["identical_pair_index"])
            for p in range(len(want)):
                if p == i:
                    assert np.abs(grad[p]).max() <= 1e-12
                else:
                    assert rel_l2(grad[p], want[p]) <= F64_RTOL


# -- the reference's state-dict layout ------------------------------------------------------------------


@pytest.mark.parametrize("name,colorspace", list(REFERENCE_FILES))
def test_state_dict_is_the_reference_layout(name, colorspace, converted_weights):
    path = original_weights(REFERENCE_FILES[(name, colorspace)])
    reference = torch.load(path, map_location="cpu", weights_only=True)
    loss = PROVIDER.get_loss_function(
        name, colorspace, pretrained=False, deterministic=True, luminance="batch"
    )
    state = loss.state_dict()
    assert list(state) == list(reference)
    for key, value in reference.items():
        assert (state[key].shape, state[key].dtype) == (value.shape, value.dtype), key
    # The constants (blocksize, dct.A, to_YCbCr.*) are the reference's, bit for bit.
    for key, value in loss.named_buffers():
        assert torch.equal(value, reference[key]), key

    # Strict loading of the reference file gives the golden pretrained values ...
    loss.load_state_dict(reference, strict=True)
    g = load_golden(("watson_dct_" if name == "Watson-DCT" else "watson_dft_") + colorspace.lower())
    np.testing.assert_allclose(forward(loss, *tensors(g)), g["value_sum"], rtol=VALUE_RTOL[name])
    # ... and the pretrained module built from the converted weights holds exactly the reference tensors.
    pretrained = PROVIDER.get_loss_function(name, colorspace, weights_dir=converted_weights)
    assert not any(p.requires_grad for p in pretrained.parameters())  # pretrained weights come frozen
    for key, value in pretrained.state_dict().items():
        assert torch.equal(value, reference[key]), key

    fresh = PROVIDER.get_loss_function(name, colorspace, pretrained=False).load_reference(path)
    assert all(torch.equal(v, reference[k]) for k, v in fresh.state_dict().items())
    # ... and its parameters in watson_jax's layout are those of the JAX loss with the converted weights.
    jax_loss = JaxLossProvider().get_loss_function(name, colorspace, weights_dir=converted_weights)
    ours, theirs = flatten(fresh.jax_params()), flatten(jax_loss.params)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        np.testing.assert_array_equal(ours[key], np.asarray(theirs[key]), err_msg=key)


def test_load_reference_refuses_other_files(tmp_path):
    loss = PROVIDER.get_loss_function("Watson-DCT", "LA", pretrained=False)
    with pytest.raises(WeightsError, match="missing keys"):
        loss.load_reference(original_weights("gray_watson_fft_trial0.pth"))
    state = torch.load(original_weights("gray_watson_dct_trial0.pth"), weights_only=True)
    state["dct.A"] = state["dct.A"] * 2
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="constant"):
        loss.load_reference(tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="cannot read"):
        loss.load_reference(tmp_path / "missing.pth")


def test_constants_equal_the_jax_ones():
    from watson_jax import blocks
    from watson_jax.losses import adaptive, ssim
    from watson_jax.torch import (
        adaptive as torch_adaptive,
    )
    from watson_jax.torch import (
        blocks as torch_blocks,
    )
    from watson_jax.torch import (
        ssim as torch_ssim,
    )

    # Exact: both windows are the same expression of math.exp, in the same process, rounded to float32.
    np.testing.assert_array_equal(torch_ssim.gaussian_window(), ssim.gaussian_window())
    # The DCT matrices come from float64 cosines, math.cos here and np.cos there (numpy's SIMD cos, e.g.
    # SVML on AVX-512, may differ from libm in the last float64 bit), each rounded once to float32:
    # measured equal, but an entry within a float64 ulp of a float32 rounding boundary could round apart
    # on another CPU, so one float32 ulp.
    np.testing.assert_array_max_ulp(torch_blocks.dct_matrix(), blocks.dct_matrix(), maxulp=1)
    for n in (
        3,
        48,
        64,
    ):  # both float64 from the same formula (torch.cos vs np.cos: last-bit differences)
        np.testing.assert_allclose(
            torch_adaptive.dct_matrix(n).numpy(), adaptive._dct_matrix(n), rtol=0, atol=1e-15
        )


# -- modes and errors -----------------------------------------------------------------------------------


def test_training_mode_of_watson_dft():
    """eval() by default; train() activates the real bins' phase and the dropout, drawn from the generator."""
    g = load_golden("watson_dft_rgb")
    x, y = tensors(g)
    loss = PROVIDER.get_loss_function("Watson-DFT", pretrained=False, deterministic=True, reduction="none")
    assert not loss.training
    evaluated = forward(loss, x, y)
    loss.train()
    a = forward_with(loss, x, y, torch.Generator().manual_seed(0))
    b = forward_with(loss, x, y, torch.Generator().manual_seed(0))
    c = forward_with(loss, x, y, torch.Generator().manual_seed(1))
    # Exact: the same eager operations on the same inputs with the same mask (the seed decides it).
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, evaluated)


def forward_with(loss, x, y, generator):
    with torch.no_grad():
        return loss(x, y, generator).numpy()


@pytest.mark.parametrize("name", ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT"])
def test_reductions(name):
    x, y = tensors(load_golden("watson_dft_rgb"))
    per_image = forward(
        PROVIDER.get_loss_function(name, pretrained=False, deterministic=True, reduction="none"),
        x,
        y,
    )
    assert per_image.shape == (4,)
    for reduction, expected in (("sum", per_image.sum()), ("mean", per_image.mean())):
        loss = PROVIDER.get_loss_function(name, pretrained=False, deterministic=True, reduction=reduction)
        np.testing.assert_allclose(forward(loss, x, y), expected, rtol=1e-6)


def test_parameters_can_be_tuned():
    """Untrained parameters get finite gradients, in evaluation and in training mode."""
    x, y = tensors(load_golden("watson_dft_rgb"))
    loss = PROVIDER.get_loss_function("Watson-DFT", pretrained=False, deterministic=True)
    for mode in (loss.eval, loss.train):
        mode()
        loss.zero_grad()
        loss(x, y, torch.Generator().manual_seed(0)).backward()
        for key, p in loss.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT"])
def test_greyscale_converts_three_channels(name):
    g = load_golden("watson_dft_rgb")
    x, y = tensors(g)
    loss = PROVIDER.get_loss_function(name, "grey", pretrained=False, deterministic=True, reduction="none")
    grey = lambda t: (t[:, 0:1] * 0.3 + t[:, 1:2] * 0.59) + t[:, 2:3] * 0.11  # noqa: E731
    # Exact: the library's conversion is these eager torch operations in this order, each rounded
    # separately (eager torch contracts nothing into an FMA), so the grey images are equal bit for bit and
    # so is everything computed from them.
    np.testing.assert_array_equal(forward(loss, x, y), forward(loss, grey(x), grey(y)))


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda x: x.permute(0, 2, 3, 1), InputError, "NHWC"),
        (lambda x: x[0], InputError, "rank 3"),
        (lambda x: (x * 255).to(torch.uint8), InputTypeError, "float"),
        (lambda x: x[:, :, :60], InputError, "multiples of 8"),
        (lambda x: x[:, :1], InputError, "1 channels"),
        (lambda x: x.numpy(), InputTypeError, "torch.Tensor"),
    ],
)
def test_clear_errors(make, error, match):
    x = torch.rand(2, 3, 64, 64)
    loss = PROVIDER.get_loss_function("Watson-DFT", pretrained=False)
    with pytest.raises(error, match=match):
        loss(make(x), x if match != "multiples of 8" else x[:, :, :60])
    with pytest.raises(InputError, match="same shape"):
        loss(x, x[:1])
    with pytest.raises(InputError, match="shift"):
        loss(x, x, shift=(8, 0))


def test_shift_is_for_watson_only():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(OptionError, match="Watson losses only"):
        PROVIDER.get_loss_function("SSIM")(x, x, shift=(4, 4))


# -- Adaptive (docs/reference.md §7): maps, image sizes, the reference's state-dict layout ------------
# Tolerances (golden README): values rtol 1e-5; maps and gradients max |Δ| ≤ 1e-5·max |ref|;
# float64 rtol 1e-6.
# The weights folder is the converter's output (conftest), which also holds Barron's log-partition table, so
# no test here computes the table (~25 s).

ADAPTIVE_FILES = ["adaptive_rgb", "adaptive_la", "adaptive_rgb_48x80", "adaptive_la_48x80"]
ADAPTIVE_REFERENCE = {"RGB": "rgb_adaptive_trial0.pth", "LA": "gray_adaptive_trial0.pth"}
ADAPTIVE_RTOL = 1e-5


def build_adaptive(golden, *, pretrained, weights_dir, reduction="sum"):
    size = tuple(int(s) for s in golden["image_size"])
    if str(golden["colorspace"]) == "LA":
        size = (
            1,
            *size[1:],
        )  # C = 1 is accepted and means the same (grey replicated to 3 channels)
    return PROVIDER.get_loss_function(
        "Adaptive",
        str(golden["colorspace"]),
        reduction=reduction,
        pretrained=pretrained,
        image_size=size,
        weights_dir=weights_dir,
    )


def adaptive_settings(golden):
    """(key suffix, pretrained): trained weights exist for 3×64×64 only."""
    return [("", True)] * bool(golden["pretrained_available"]) + [("_init", False)]


def assert_close_to_max(got, want, rel=ADAPTIVE_RTOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= rel * np.max(np.abs(want))


@pytest.mark.parametrize("golden_name", ADAPTIVE_FILES)
def test_adaptive_float32(golden_name, converted_weights):
    """Pretrained (where available) and initial parameters: 'sum' value, input gradient, the map
    (elementwise=True, the reference's 'none' output) and 'none' (the map summed per image)."""
    g = load_golden(golden_name)
    x, y = tensors(g)
    for suffix, pretrained in adaptive_settings(g):
        loss = build_adaptive(g, pretrained=pretrained, weights_dir=converted_weights)
        assert all(p.requires_grad != pretrained for p in loss.parameters())  # pretrained comes frozen
        value, grad = value_and_grad(loss, x, y)
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, g[f"value_sum{suffix}"], rtol=ADAPTIVE_RTOL)
        assert_close_to_max(grad, g[f"grad_input{suffix}"])
        i = int(g["identical_pair_index"])
        if i >= 0:
            assert np.all(grad[i] == 0)  # the NLL's derivative at v = 0 is exactly 0

        with torch.no_grad():
            nll_map = loss(x, y, elementwise=True).numpy()
        assert nll_map.shape == (len(x), 3, *x.shape[2:])  # grey: 3 replicated channels
        assert_close_to_max(nll_map, g[f"value_none{suffix}"])

        per_image = forward(
            build_adaptive(g, pretrained=pretrained, weights_dir=converted_weights, reduction="none"),
            x,
            y,
        )
        assert per_image.shape == (len(x),)
        # Per image the sums over C are far from 0 (README), so a relative tolerance applies.
        np.testing.assert_allclose(per_image, g[f"value_none_sum_hw{suffix}"].sum(axis=1), rtol=ADAPTIVE_RTOL)


@pytest.mark.parametrize("golden_name", ADAPTIVE_FILES)
def test_adaptive_float64(golden_name, converted_weights):
    """float64 inputs compute in float64 (float32 parameters widened, float64 table): rtol 1e-6."""
    g = load_golden(golden_name)
    x, y = tensors(g, torch.float64)
    for suffix, pretrained in adaptive_settings(g):
        loss = build_adaptive(g, pretrained=pretrained, weights_dir=converted_weights)
        value, grad = value_and_grad(loss, x, y)
        assert value.dtype == np.float64 and grad.dtype == np.float64
        np.testing.assert_allclose(value, g[f"value_sum{suffix}_f64"], rtol=F64_RTOL)
        with torch.no_grad():
            nll = loss(x, y, elementwise=True).numpy()
            zero = torch.full_like(x[:1], 0.25)
            nll_at_zero = loss(zero, zero, elementwise=True).numpy()
        check_adaptive_float64_map_and_gradient(g, suffix, nll, grad, nll_at_zero)


@pytest.mark.parametrize("colorspace", list(ADAPTIVE_REFERENCE))
def test_adaptive_state_dict_is_the_reference_layout(colorspace, converted_weights):
    path = original_weights(ADAPTIVE_REFERENCE[colorspace])
    reference = torch.load(path, map_location="cpu", weights_only=True)
    loss = PROVIDER.get_loss_function("Adaptive", colorspace, pretrained=False, weights_dir=converted_weights)
    state = loss.state_dict()
    assert (
        list(state)
        == list(reference)
        == [
            ".robust_loss.adaptive_lossfun.latent_alpha",
            ".robust_loss.adaptive_lossfun.latent_scale",
        ]
    )
    for key, value in reference.items():
        assert (state[key].shape, state[key].dtype) == (value.shape, value.dtype), key
    assert [name for name, _ in loss.named_parameters()] == ["latent_alpha", "latent_scale"]

    # Strict loading of the reference file gives the golden pretrained values ...
    loss.load_state_dict(reference, strict=True)
    g = load_golden("adaptive_" + colorspace.lower())
    np.testing.assert_allclose(forward(loss, *tensors(g)), g["value_sum"], rtol=ADAPTIVE_RTOL)
    assert all(torch.equal(v, reference[k]) for k, v in loss.state_dict().items())
    # ... the pretrained module built from the converted weights holds exactly the reference tensors ...
    pretrained = PROVIDER.get_loss_function("Adaptive", colorspace, weights_dir=converted_weights)
    for key, value in pretrained.state_dict().items():
        assert torch.equal(value, reference[key]), key
    # ... and so does one loaded with load_reference, whose parameters in watson_jax's layout are the JAX
    # loss's.
    fresh = PROVIDER.get_loss_function(
        "Adaptive", colorspace, pretrained=False, weights_dir=converted_weights
    ).load_reference(path)
    assert all(torch.equal(v, reference[k]) for k, v in fresh.state_dict().items())
    jax_loss = JaxLossProvider().get_loss_function("Adaptive", colorspace, weights_dir=converted_weights)
    ours, theirs = flatten(fresh.jax_params()), flatten(jax_loss.params)
    assert sorted(ours) == sorted(theirs) == ["latent_alpha", "latent_scale"]
    for key in ours:
        np.testing.assert_array_equal(ours[key], np.asarray(theirs[key]), err_msg=key)

    # The internal parameter names are not the file layout: a strict load reports them.
    internal = {
        "latent_alpha": reference[".robust_loss.adaptive_lossfun.latent_alpha"],
        "latent_scale": reference[".robust_loss.adaptive_lossfun.latent_scale"],
    }
    with pytest.raises(
        RuntimeError, match=r"Missing key\(s\).*\.robust_loss\.adaptive_lossfun\.latent_alpha"
    ):
        loss.load_state_dict(internal, strict=True)
    # Nested in another module, the keys get the usual prefix (and load back).
    outer = torch.nn.ModuleDict({"loss": fresh})
    assert list(outer.state_dict()) == ["loss." + k for k in reference]
    outer.load_state_dict(outer.state_dict(), strict=True)


def test_adaptive_load_reference_refuses_other_files(converted_weights):
    loss = PROVIDER.get_loss_function("Adaptive", "LA", pretrained=False, weights_dir=converted_weights)
    with pytest.raises(WeightsError, match="missing keys"):
        loss.load_reference(original_weights("gray_watson_dct_trial0.pth"))
    other_size = PROVIDER.get_loss_function(
        "Adaptive", "RGB", pretrained=False, image_size=(3, 48, 80), weights_dir=converted_weights
    )
    with pytest.raises(WeightsError, match="shape"):
        other_size.load_reference(original_weights("rgb_adaptive_trial0.pth"))


def test_adaptive_image_size_rules(converted_weights):
    kw = dict(weights_dir=converted_weights)
    with pytest.raises(OptionError, match="pretrained Adaptive weights exist for images of size"):
        PROVIDER.get_loss_function("Adaptive", image_size=(3, 48, 80), **kw)
    with pytest.raises(InputError, match="image_size"):
        PROVIDER.get_loss_function("Adaptive", pretrained=False, image_size=(2, 64, 64), **kw)
    loss = PROVIDER.get_loss_function("Adaptive", pretrained=False, **kw)  # default: (3, 64, 64)
    assert loss.image_size == (3, 64, 64) and loss.latent_alpha.shape == (1, 3 * 64 * 64)
    x = torch.rand(1, 3, 48, 80)
    with pytest.raises(InputError, match=r"image_size=\(3, 48, 80\)"):
        loss(x, x)
    with pytest.raises(InputError, match="image_size"):
        loss(x, x, elementwise=True)


def test_adaptive_modes(converted_weights):
    """Reductions, greyscale conversion of 3 channels, symmetry in its arguments, tunable parameters."""
    g = load_golden("adaptive_rgb")
    x, y = tensors(g)
    build_with = lambda **kw: PROVIDER.get_loss_function("Adaptive", weights_dir=converted_weights, **kw)  # noqa: E731
    per_image = forward(build_with(reduction="none"), x, y)
    for reduction, expected in (("sum", per_image.sum()), ("mean", per_image.mean())):
        np.testing.assert_allclose(forward(build_with(reduction=reduction), x, y), expected, rtol=1e-6)
    # The NLL is even in x − y: swapping the arguments changes nothing, bit for bit. Exact by the maths
    # of rounding: IEEE rounding is symmetric in sign, so every linear step (YUV, DCT: the same kernels,
    # with or without FMA) maps −v to exactly −(its image of v), and the NLL is even.
    np.testing.assert_array_equal(forward(build_with(reduction="none"), y, x), per_image)

    grey_loss = build_with(colorspace="LA", reduction="none")
    grey = lambda t: (t[:, 0:1] * 0.3 + t[:, 1:2] * 0.59) + t[:, 2:3] * 0.11  # noqa: E731
    np.testing.assert_array_equal(forward(grey_loss, x, y), forward(grey_loss, grey(x), grey(y)))  # as above

    loss = build_with(pretrained=False)
    loss(x, y).backward()
    for key, p in loss.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, key


def test_elementwise_maps_of_the_other_losses():
    """elementwise=True: |x − y| and (x − y)² maps (the reference's 'none'); an OptionError elsewhere."""
    for name, stem in (("L1", "l1"), ("L2", "l2")):
        for cs in ("rgb", "la"):
            g = load_golden(f"{stem}_{cs}")
            loss = PROVIDER.get_loss_function(name, str(g["colorspace"]))
            with torch.no_grad():
                got = loss(*tensors(g), elementwise=True).numpy()
            np.testing.assert_allclose(got, g["value_none"], rtol=1e-6, atol=1e-6)
    x = torch.rand(1, 3, 16, 16)
    for name in ("SSIM", "Watson-DCT", "Watson-DFT"):
        with pytest.raises(OptionError, match="no elementwise terms"):
            PROVIDER.get_loss_function(name, pretrained=False, deterministic=True)(x, x, elementwise=True)
