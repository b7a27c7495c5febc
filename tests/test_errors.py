"""Every bad input gets a clear error naming the problem and the fix, at trace time, never inside XLA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from watson_jax import (
    InputError,
    InputTypeError,
    LossProvider,
    MissingBackboneError,
    MissingWeightsError,
    OptionError,
    WeightsError,
    weights,
)

PROVIDER = LossProvider()


def make(name="Watson-DFT", **kw):
    kw.setdefault("deterministic", True)
    kw.setdefault("pretrained", False)
    return PROVIDER.get_loss_function(name, **kw)


def rgb(n=2, h=16, w=16, c=3):
    return np.random.default_rng(0).uniform(size=(n, h, w, c)).astype(np.float32)


@pytest.mark.parametrize(
    "shape,match",
    [((16, 16, 3), r"rank 3.*x\[None\]"), ((16, 16), r"rank 2"), ((1, 2, 16, 16, 3), r"rank 5")],
)
def test_wrong_rank(shape, match):
    x = np.zeros(shape, np.float32)
    with pytest.raises(InputError, match=match):
        make()(x, x)


@pytest.mark.parametrize("colorspace,shape", [("RGB", (2, 3, 16, 24)), ("LA", (2, 1, 16, 24))])
def test_nchw_passed_as_nhwc(colorspace, shape):
    x = np.zeros(shape, np.float32)
    with pytest.raises(InputError, match=r"NCHW.*jnp.transpose\(x, \(0, 2, 3, 1\)\)"):
        make(colorspace=colorspace)(x, x)


def test_rgb_loss_given_one_channel():
    x = rgb(c=1)
    with pytest.raises(InputError, match="expects 3 channels.*colorspace='LA'"):
        make("SSIM")(x, x)


def test_four_channels():
    x = rgb(c=4)
    with pytest.raises(InputError, match=r"1 or 3 channels.*alpha channel"):
        make("L1", colorspace="grey")(x, x)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.bool_])
def test_integer_images(dtype):
    x = np.zeros((2, 16, 16, 3), dtype)
    with pytest.raises(InputTypeError, match=r"floating-point images.*astype\(jnp.float32\) / 255"):
        make()(x, x)
    assert issubclass(InputTypeError, TypeError)


@pytest.mark.parametrize("name", ["Watson-DCT", "Watson-DFT"])
@pytest.mark.parametrize("h,w", [(20, 16), (16, 30)])
def test_size_not_a_multiple_of_8(name, h, w):
    x = rgb(h=h, w=w)
    with pytest.raises(InputError, match=f"multiples of 8.*H={h}, W={w}"):
        make(name)(x, x)


def test_sizes_that_are_not_multiples_of_8_are_fine_for_pixel_losses_and_ssim():
    """Sizes that are no multiple of 8 are computed, and x against x gives the identical-pair value 0:
    exactly for L1/L2 (every difference is 0); for SSIM 1 − SSIM with SSIM's numerator and denominator
    built from the same numbers (0.0 measured on CPU), allowed 4 ulps of 1 for a backend that fuses the
    two sides differently."""
    x = rgb(h=13, w=17)
    for name in ("L1", "L2"):
        assert float(make(name)(x, x)) == 0.0, name
    assert abs(float(make("SSIM")(x, x))) <= 4 * np.finfo(np.float32).eps
    assert float(make("SSIM")(x, rgb(h=13, w=17)[::-1])) > 0.01  # and a different pair is not 0


def test_shape_mismatch():
    with pytest.raises(InputError, match="same shape"):
        make()(rgb(), rgb(h=24))


def test_empty_batch():
    x = np.zeros((0, 16, 16, 3), np.float32)
    with pytest.raises(InputError, match="at least one image"):
        make()(x, x)


def test_errors_are_raised_at_trace_time_under_jit():
    loss = make()
    with pytest.raises(InputTypeError):
        jax.jit(lambda a, b: loss(a, b))(
            jnp.zeros((1, 16, 16, 3), jnp.int32), jnp.zeros((1, 16, 16, 3), jnp.int32)
        )
    with pytest.raises(InputError, match="NCHW"):
        jax.jit(lambda a, b: loss(a, b))(jnp.zeros((1, 3, 16, 16)), jnp.zeros((1, 3, 16, 16)))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(
        OptionError, match=r"unknown loss 'watson-xyz'.*'L1'.*'Watson-DFT' \(alias 'Watson-FFT'\)"
    ):
        make("watson-xyz")


@pytest.mark.parametrize(
    "name,checkpoint,flag",
    [
        ("deeploss-vgg", "vgg16-397923af", "--vgg16"),
        ("Deeploss-Squeeze", "squeezenet1_1-b8a52dc0", "--squeezenet"),
    ],
)
def test_deeploss_without_backbone_names_the_checkpoint(name, checkpoint, flag, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingBackboneError, match=f"(?s){checkpoint}.*watson-jax convert {flag} <path"):
        make(name, weights_dir=tmp_path)


def test_deeploss_backbone_in_the_torch_hub_cache_is_pointed_out(tmp_path, monkeypatch):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "vgg16-397923af.pth").write_bytes(b"")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(
        MissingBackboneError, match="(?s)in the torch hub cache.*watson-jax convert --vgg16 --dest"
    ):
        make("Deeploss-VGG", weights_dir=tmp_path)


def test_unknown_colorspace():
    with pytest.raises(OptionError, match="unknown colorspace 'YUV'.*'RGB'.*'LA'"):
        make(colorspace="YUV")


def test_unknown_reduction():
    with pytest.raises(OptionError, match="unknown reduction 'avg'.*'none', 'sum', 'mean'"):
        make(reduction="avg")


def test_unknown_luminance_mode():
    with pytest.raises(OptionError, match="unknown luminance mode"):
        make(luminance="global")


def test_missing_key():
    x = rgb()
    with pytest.raises(OptionError, match=r"needs a PRNG key.*deterministic=True"):
        make(deterministic=False)(x, x)


@pytest.mark.parametrize("name", ["Watson-DCT", "Watson-DFT"])
def test_missing_weights_name_the_converter_command(name, tmp_path):
    with pytest.raises(
        MissingWeightsError,
        match=r"(?s)not found.*watson-jax convert --download --dest " + str(tmp_path),
    ):
        PROVIDER.get_loss_function(name, weights_dir=tmp_path)
    assert issubclass(MissingWeightsError, FileNotFoundError)


def test_weights_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "from_env"))
    with pytest.raises(MissingWeightsError, match="from_env"):
        PROVIDER.get_loss_function("Watson-DFT")


def test_corrupt_weights(tmp_path):
    (tmp_path / "watson_dft_rgb.npz").write_bytes(b"not a zip archive at all")
    with pytest.raises(WeightsError, match=r"corrupt.*watson-jax convert"):
        PROVIDER.get_loss_function("Watson-DFT", weights_dir=tmp_path)


def test_weights_with_a_missing_or_misshapen_parameter(tmp_path):
    params = make().params
    params = jax.tree.map(np.asarray, params)
    del params["lcb"]["alpha"]
    weights.save_params(tmp_path / "watson_dft_rgb.npz", params)
    with pytest.raises(WeightsError, match=r"missing parameters \['lcb/alpha'\]"):
        PROVIDER.get_loss_function("Watson-DFT", weights_dir=tmp_path)
    params["lcb"]["alpha"] = np.zeros(3, np.float32)
    params["ly"]["t_tild"] = np.zeros((8, 8), np.float32)
    weights.save_params(tmp_path / "watson_dft_rgb.npz", params)
    with pytest.raises(WeightsError, match=r"'lcb/alpha' has shape \(3,\), expected \(\)"):
        PROVIDER.get_loss_function("Watson-DFT", weights_dir=tmp_path)


def test_non_finite_weights(tmp_path):
    params = jax.tree.map(np.asarray, make().params)
    params["w_tild"] = np.array([0, np.nan, 0], np.float32)
    weights.save_params(tmp_path / "watson_dft_rgb.npz", params)
    with pytest.raises(WeightsError, match="not a finite"):
        PROVIDER.get_loss_function("Watson-DFT", weights_dir=tmp_path)


@pytest.mark.parametrize("shift", [(8, 0), (-1, 2), (1, 2, 3), (0.5, 1)])
def test_bad_shift_offset(shift):
    x = rgb()
    with pytest.raises(InputError, match="shift must be a pair"):
        make()(x, x, shift=shift)


def test_raw_uint32_keys_are_accepted():
    x = rgb()
    assert np.isfinite(make(deterministic=False)(x, x, key=jax.random.PRNGKey(0)))
