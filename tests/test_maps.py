"""Distance maps (``loss(x, y, spatial=True)``): shape, relation to the distance, and where they light up."""

import functools

import jax
import numpy as np
import pytest
from helpers import load_golden, nhwc

from watson_jax import LossProvider, OptionError

PROVIDER = LossProvider()
ANALYTIC = ["L1", "L2", "SSIM", "Watson-DCT", "Watson-DFT", "Adaptive"]
H, W = 32, 40
PATCH = (slice(8, 16), slice(16, 24))  # one 8×8 block


def make(name, **kw):
    kw.setdefault("pretrained", False)
    kw.setdefault("deterministic", False)
    if name == "Adaptive":
        kw.setdefault("image_size", (3, H, W))
    return PROVIDER.get_loss_function(name, reduction="none", **kw)


@functools.partial(jax.jit, static_argnames="spatial")
def run(loss, x, y, spatial):
    return loss(x, y, spatial=spatial) if spatial else loss(x, y, jax.random.key(0))


@pytest.fixture(scope="module")
def patch_pair():
    """y: smooth random images; x: y with one 8×8 block changed."""
    rng = np.random.default_rng(0)
    y = (0.5 + 0.2 * rng.standard_normal((2, H, W, 3))).clip(0, 1).astype(np.float32)
    x = y.copy()
    x[:, PATCH[0], PATCH[1]] = rng.uniform(size=(2, 8, 8, 3))
    return x, y


@pytest.mark.parametrize("name", ANALYTIC)
def test_map_sums_to_the_distance(name, patch_pair):
    x, y = patch_pair
    loss = make(name, deterministic=True)
    m = run(loss, x, y, True)
    assert m.shape == (2, H, W)
    np.testing.assert_allclose(
        np.sum(np.asarray(m, np.float64), axis=(1, 2)), run(loss, x, y, False), rtol=2e-5
    )


@pytest.mark.parametrize("name", ANALYTIC)
def test_map_shows_where_the_images_differ(name, patch_pair):
    x, y = patch_pair
    m = np.asarray(run(make(name), x, y, True))
    inside = np.zeros((H, W), bool)
    inside[PATCH] = True
    if name == "SSIM":  # the 11×11 window spreads a difference by 5 pixels
        inside[3:21, 11:29] = True
    if name == "Adaptive":  # its terms live on a DCT along whole columns (the reference's representation)
        inside[:, PATCH[1]] = True
    for image in m:
        peak = np.unravel_index(np.argmax(image), image.shape)
        assert inside[peak], f"{name}: map peaks at {peak}, outside the changed block"
        if name != "Adaptive":  # Adaptive's NLL has a constant part on every pixel
            # (Watson-DFT's phase term has a floor, arccos(1 − 1e-7), on identical blocks.)
            assert image[~inside].max() <= 1e-3 * image.max()


def test_maps_need_no_key_and_ignore_the_random_shift(patch_pair):
    x, y = patch_pair
    random_loss = make("Watson-DFT")
    got = random_loss(x, y, spatial=True)
    want = make("Watson-DFT", deterministic=True)(x, y, spatial=True)
    # Two configurations, two compiled programs: measured equal here, but bitwise equality would be a
    # property of XLA's fusion (and FMA contraction) on this backend, not of the maths. A few float32 ulps
    # of the map's peak; any shift (the smallest moves the 8×8 grid by a pixel) changes the map by O(1).
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * np.finfo(np.float32).eps * float(np.max(want)))
    with pytest.raises(OptionError, match="spatial=True.*shift="):
        random_loss(x, y, shift=(1, 2), spatial=True)
    with pytest.raises(OptionError, match="spatial=True.*elementwise"):
        make("L1")(x, y, spatial=True, elementwise=True)


@pytest.mark.parametrize("name", ["Deeploss-VGG", "Deeploss-Squeeze"])
def test_deeploss_map_upsamples_the_layer_maps(name, converted_weights):
    """LPIPS's spatial mode: the layer maps upsampled to the input size and summed; the map's sum is the
    distance up to the bilinear interpolation (3e-4 here), and it peaks where the images differ."""
    g = load_golden("deeploss_squeeze_rgb")
    y = nhwc(g["target"])[:1]
    x = y.copy()
    x[:, 24:40, 32:48] = 1 - x[:, 24:40, 32:48]
    loss = PROVIDER.get_loss_function(name, reduction="none", weights_dir=converted_weights)
    m = np.asarray(run(loss, x, y, True))
    assert m.shape == (1, 64, 64)
    np.testing.assert_allclose(m.sum(), run(loss, x, y, False)[0], rtol=2e-3)
    peak = np.unravel_index(np.argmax(m[0]), m[0].shape)
    assert 16 <= peak[0] < 48 and 24 <= peak[1] < 56, peak
