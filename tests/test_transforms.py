"""The building blocks against independent numpy computations."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from watson_jax import blocks
from watson_jax.color import YCBCR_MATRIX, YCBCR_OFFSET
from watson_jax.losses import masking, phase, ssim


def numpy_blocks(images):
    """(N, H, W) → (N, Hb, Wb, 8, 8) tiles, the obvious way."""
    n, h, w = images.shape
    return images.reshape(n, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)


@pytest.fixture(params=sorted(blocks.DFT_IMPLEMENTATIONS))
def dft(request):
    """Each selectable block-DFT implementation, chosen by ``implementation=``."""
    return functools.partial(blocks.block_dft, implementation=request.param)


def test_pixel_blocks_are_the_8x8_tiles_row_major_and_from_blocks_inverts_them():
    x = np.random.default_rng(5).uniform(size=(2, 16, 24, 3)).astype(np.float32)
    got = np.asarray(blocks.pixel_blocks(jnp.asarray(x)))  # (N, B, C, 8, 8)
    # Exact by construction: reshapes and transposes move values without arithmetic.
    for c in range(3):
        np.testing.assert_array_equal(got[:, :, c], numpy_blocks(x[..., c]).reshape(2, 6, 8, 8))
    np.testing.assert_array_equal(blocks.from_blocks(got[:, :, 1], 16, 24), x[..., 1])


def test_block_planes_are_ycbcr_or_grey_per_block():
    x = np.random.default_rng(6).uniform(size=(1, 8, 16, 3)).astype(np.float32)
    planes = np.asarray(blocks.block_planes(jnp.asarray(x), YCBCR_MATRIX, YCBCR_OFFSET))
    want = x.astype(np.float64) @ YCBCR_MATRIX.T.astype(np.float64) + YCBCR_OFFSET
    for k in range(3):
        np.testing.assert_allclose(planes[:, :, k], numpy_blocks(want[..., k]).reshape(1, 2, 8, 8), atol=1e-6)
    np.testing.assert_allclose(planes[0, 0, :, 0, 0], x[0, 0, 0] @ YCBCR_MATRIX.T + YCBCR_OFFSET, rtol=1e-6)
    grey = np.asarray(blocks.block_planes(jnp.asarray(x[..., :1]), ((1.0,),)))  # exact: a product with 1
    np.testing.assert_array_equal(grey[:, :, 0], numpy_blocks(x[..., 0]).reshape(1, 2, 8, 8))


def test_block_dft_equals_numpy_rfft2_per_block_divided_by_64(dft):
    x = np.random.default_rng(0).uniform(size=(2, 16, 24)).astype(np.float64)
    tiles = numpy_blocks(x)
    with jax.enable_x64(True):
        re, im = dft(jnp.asarray(tiles))
    want = np.fft.rfft2(tiles) / 64
    assert re.dtype == jnp.float64 and re.shape == (2, 2, 3, 8, 5)
    np.testing.assert_allclose(re, want.real, atol=1e-15)
    np.testing.assert_allclose(im, want.imag, atol=1e-15)


def test_block_dft_derivatives_are_the_dft_and_its_transpose(dft):
    """Forward mode gives the DFT of the tangent; reverse mode its transpose, written out in numpy."""
    rng = np.random.default_rng(7)
    x, t = rng.uniform(size=(2, 3, 8, 8)), rng.normal(size=(2, 3, 8, 8))
    g_re, g_im = rng.normal(size=(2, 2, 3, 8, 5))
    with jax.enable_x64(True):
        _, (d_re, d_im) = jax.jvp(dft, (jnp.asarray(x),), (jnp.asarray(t),))
        (x_bar,) = jax.vjp(dft, jnp.asarray(x))[1]((jnp.asarray(g_re), jnp.asarray(g_im)))
    want = np.fft.rfft2(t) / 64
    np.testing.assert_allclose(d_re, want.real, atol=1e-15)
    np.testing.assert_allclose(d_im, want.imag, atol=1e-15)
    h = np.arange(8)
    angle = 2 * np.pi * (np.outer(h, h)[:, None, :, None] + np.outer(h[:5], h)[None, :, None, :]) / 8
    x_bar_want = (
        np.einsum("...uv,uvhw->...hw", g_re, np.cos(angle))
        - np.einsum("...uv,uvhw->...hw", g_im, np.sin(angle))
    ) / 64
    np.testing.assert_allclose(x_bar, x_bar_want, atol=1e-14)


def test_block_dft_of_blocks_constant_along_an_axis_has_exact_zeros(dft):
    """Like an FFT (and unlike a matrix product), rows or columns that are constant give exact zeros.

    Exact by the arithmetic, not by luck of rounding: the butterflies' first stage subtracts equal floats
    (exactly 0) and every later term is a sum or product of those zeros, with or without FMA contraction.
    For 'fft' it is the backend's FFT library doing the same (a radix algorithm), checked because float64
    gradient parity relies on it.
    """
    rng = np.random.default_rng(1)
    cols = np.broadcast_to(rng.uniform(size=(1, 8)), (8, 8)).astype(np.float32)  # constant along H
    re, im = dft(jnp.asarray(cols))
    assert np.all(np.asarray(re)[1:, :] == 0) and np.all(np.asarray(im)[1:, :] == 0)
    rows = np.broadcast_to(rng.uniform(size=(8, 1)), (8, 8)).astype(np.float32)  # constant along W
    re, im = dft(jnp.asarray(rows))
    assert np.all(np.asarray(re)[:, 1:] == 0) and np.all(np.asarray(im)[:, 1:] == 0)
    flat = np.full((8, 8), 0.37, np.float32)
    re, im = dft(jnp.asarray(flat))
    assert np.count_nonzero(np.asarray(re)) == 1 and np.count_nonzero(np.asarray(im)) == 0


def test_block_dft_implementations_agree_in_float32():
    x = jnp.asarray(np.random.default_rng(4).uniform(size=(3, 4, 8, 8)).astype(np.float32))
    (re_b, im_b), (re_f, im_f) = (jax.jit(f)(x) for f in blocks.DFT_IMPLEMENTATIONS.values())
    np.testing.assert_allclose(re_b, re_f, atol=1e-7)
    np.testing.assert_allclose(im_b, im_f, atol=1e-7)


def test_block_dft_implementations_give_the_same_values_and_gradients_in_float32():
    """implementation= of block_dfts: the RGB planes of two shifted images, a nonlinear objective, so that
    the gradient depends on the forward values (both are differentiated through the same DFT matrices)."""
    rng = np.random.default_rng(5)
    a, b = (jnp.asarray(rng.uniform(size=(2, 16, 16, 3)).astype(np.float32)) for _ in range(2))
    w = jnp.asarray(rng.normal(size=(2, 4, 3, 8, 5)).astype(np.float32))

    def objective(implementation):
        def f(a, b):
            coefficients = blocks.block_dfts(
                [a, b], YCBCR_MATRIX, offsets=[YCBCR_OFFSET] * 2, implementation=implementation, shift=(2, 5)
            )
            return sum(jnp.sum(jnp.sin(8 * c) * w) for parts in coefficients for c in parts)

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

    (v_b, g_b), (v_f, g_f) = (objective(name)(a, b) for name in sorted(blocks.DFT_IMPLEMENTATIONS))
    # float32 noise, measured on the 2-core CPU: values equal, gradients apart by ≤ 4.8e-7 (entries up to 2.4:
    # 2 ulps). The transforms themselves differ by ~1e-7 and sin(8c) scales that by 8, so allow ~8 ulps.
    np.testing.assert_allclose(v_b, v_f, rtol=1e-6)
    for got, want in zip(g_b, g_f):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
        assert np.abs(np.asarray(got)).max() > 0.1  # a gradient that vanished would pass the comparison


def test_block_dft_unknown_implementation_is_a_clear_error():
    x = jnp.zeros((1, 8, 8))
    for bad in ["matmul", "FFT", 3]:
        with pytest.raises(ValueError, match="unknown block-DFT implementation.*'butterflies', 'fft'"):
            blocks.block_dft(x, implementation=bad)
        with pytest.raises(ValueError, match="implementation="):
            blocks.block_dfts([x[..., None]], implementation=bad)


def test_block_dft_default_follows_the_backend_table(monkeypatch):
    backend = jax.default_backend()
    assert blocks.default_dft_implementation() == blocks.DFT_BY_BACKEND[backend]
    assert set(blocks.DFT_BY_BACKEND.values()) <= set(blocks.DFT_IMPLEMENTATIONS)  # never a matmul DFT
    for name, choice in blocks.DFT_BY_BACKEND.items():
        assert blocks.default_dft_implementation(name) == choice
    assert blocks.default_dft_implementation("an-unlisted-backend") == blocks.FALLBACK_DFT
    assert blocks.dft_implementation(None) == blocks.DFT_BY_BACKEND[backend]
    assert blocks.dft_implementation("fft") == "fft"
    # implementation=None evaluates the table's choice when traced: the FFT shows as an fft primitive.
    x = jnp.zeros((2, 8, 8))
    uses_fft = lambda **kw: "fft_lengths" in str(jax.make_jaxpr(lambda x: blocks.block_dft(x, **kw))(x))  # noqa: E731
    assert uses_fft(implementation="fft") and not uses_fft(implementation="butterflies")
    for name in blocks.DFT_IMPLEMENTATIONS:
        monkeypatch.setitem(blocks.DFT_BY_BACKEND, backend, name)
        assert uses_fft() == (name == "fft")


def test_joint_transforms_equal_the_transforms_of_each_image_and_agree_for_equal_images():
    """block_dcts / block_dfts evaluate several images as one stacked batch, each with its own offset."""
    rng = np.random.default_rng(12)
    a, b = (jnp.asarray(rng.uniform(size=(2, 8, 16, 3)).astype(np.float32)) for _ in range(2))
    dct_a, dct_b = blocks.block_dcts([a, b], YCBCR_MATRIX, offsets=(YCBCR_OFFSET, None))
    np.testing.assert_allclose(
        dct_a, blocks.block_dct(blocks.block_planes(a, YCBCR_MATRIX, YCBCR_OFFSET)), atol=1e-6
    )
    np.testing.assert_allclose(dct_b, blocks.block_dct(blocks.block_planes(b, YCBCR_MATRIX)), atol=1e-6)
    (re_a, im_a), (re_b, im_b), (re_c, im_c) = blocks.block_dfts(
        [a, b, a], YCBCR_MATRIX, offsets=[YCBCR_OFFSET] * 3
    )
    want_re, want_im = blocks.block_dft(blocks.block_planes(b, YCBCR_MATRIX, YCBCR_OFFSET))
    np.testing.assert_allclose(re_b, want_re, atol=1e-7)
    np.testing.assert_allclose(im_b, want_im, atol=1e-7)
    # Equal images in one stacked computation: the same maths on equal inputs, but not bitwise equal by
    # the maths, since XLA may evaluate the slices of one fusion differently (a vector body and a scalar
    # remainder, with and without FMA contraction) on another CPU or a GPU. A few ulps of the coefficients'
    # scale (bitwise equal on this CPU).
    for got, want in [(re_a, re_c), (im_a, im_c)]:
        scale = np.abs(np.asarray(want)).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=4 * np.finfo(np.float32).eps * scale)
    with pytest.raises(ValueError, match="one per image"):
        blocks.block_dcts([a, b], YCBCR_MATRIX, offsets=(YCBCR_OFFSET,))
    with pytest.raises(TypeError, match="integers"):
        blocks.block_dfts([a, b], YCBCR_MATRIX, shift=(1.5, 2.0))


GREY_MIX = ((1.0,),)


@pytest.mark.parametrize("transform", ["dct", "dft"])
@pytest.mark.parametrize("channels, shift", [(3, (1, 6)), (1, (6, 0)), (1, None)])
def test_joint_transform_values_and_derivatives_per_image(transform, channels, shift):
    """Values, reverse and forward mode of block_dcts / block_dfts, differentiating one image or both, with
    per-image offsets and batch sizes, with a shift (applied before stacking for several planes, after for
    one) or none, against the same maps written as numpy-indexed shifts and plain matrix products
    (float64)."""
    rng = np.random.default_rng(13)
    mix, offsets = (YCBCR_MATRIX, (YCBCR_OFFSET, None)) if channels == 3 else (GREY_MIX, (None, (0.5,)))
    if transform == "dct":
        a = blocks.dct_matrix().astype(np.float64)
        kernels = [np.einsum("uh,vw->uvhw", a, a)]
        joint = lambda imgs: [(c,) for c in blocks.block_dcts(imgs, mix, offsets=offsets, shift=shift)]  # noqa: E731
    else:
        kernels = list(blocks.dft_matrices())
        joint = lambda imgs: blocks.block_dfts(imgs, mix, offsets=offsets, shift=shift)  # noqa: E731

    def plain(img, off):
        if shift is not None:
            rows, cols = numpy_shift_sources(img.shape[1], img.shape[2], shift)
            img = img[:, rows, cols]
        planes = blocks.block_planes(img, mix, off)
        return tuple(jnp.einsum("...hw,uvhw->...uv", planes, k) for k in kernels)

    with jax.enable_x64(True):
        a_img, b_img = (jnp.asarray(rng.uniform(size=(n, 8, 16, channels))) for n in (2, 3))
        weights = [
            jnp.asarray(rng.normal(size=(n, 2, len(mix), 8, 8 if transform == "dct" else 5))) for n in (2, 3)
        ]

        def objective(transform_pairs):
            return lambda a, b: sum(
                jnp.sum(jnp.sin(c) * w) for parts, w in zip(transform_pairs(a, b), weights) for c in parts
            )

        via_joint = objective(lambda a, b: joint([a, b]))
        via_plain = objective(lambda a, b: [plain(a, offsets[0]), plain(b, offsets[1])])
        np.testing.assert_allclose(via_joint(a_img, b_img), via_plain(a_img, b_img), rtol=1e-12)
        for argnums in [(0,), (1,), (0, 1)]:  # one image differentiated, or both
            for got, want in zip(
                jax.grad(via_joint, argnums)(a_img, b_img),
                jax.grad(via_plain, argnums)(a_img, b_img),
            ):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        tangents = tuple(jnp.asarray(rng.normal(size=img.shape)) for img in (a_img, b_img))
        got = jax.jvp(via_joint, (a_img, b_img), tangents)[1]
        want = jax.jvp(via_plain, (a_img, b_img), tangents)[1]
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_block_dct_is_orthonormal_dct_ii():
    x = np.random.default_rng(2).uniform(size=(2, 8, 8))
    n = np.arange(8)
    a = (
        np.sqrt(2 / 8)
        * np.where(n[:, None] == 0, 1 / np.sqrt(2), 1)
        * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16)
    )
    with jax.enable_x64(True):
        got = np.asarray(blocks.block_dct(jnp.asarray(x)))
    for b in range(2):
        np.testing.assert_allclose(got[b], a @ x[b] @ a.T, atol=1e-7)  # float32 matrix
    np.testing.assert_allclose(got[0, 0, 0], 8 * x[0].mean(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_acos_one_minus_is_arccos_to_an_ulp_with_the_exact_derivative(dtype):
    b = np.concatenate([np.geomspace(1e-7, 1, 3000), np.linspace(0, 1, 3001)[1:]]).astype(dtype)
    want = 2 * np.arcsin(np.sqrt(b.astype(np.float64) / 2))  # = arccos(1 − b), without rounding 1 − b
    with jax.enable_x64(dtype == np.float64):
        got = np.asarray(phase.acos_one_minus(jnp.asarray(b)), np.float64)
        slope = np.asarray(jax.vmap(jax.grad(phase.acos_one_minus))(jnp.asarray(b)), np.float64)
    eps = np.finfo(dtype).eps
    assert np.max(np.abs(got / want - 1)) <= 2 * eps
    b64 = b.astype(np.float64)
    assert np.max(np.abs(slope * np.sqrt(b64 * (2 - b64)) - 1)) <= 4 * eps


def test_phase_term_is_arccos_of_the_shrunk_cosine_of_the_phase_difference():
    """Against the reference's formula evaluated in float64 with trigonometric functions, including real
    coefficients of both signs (phases 0 and π), a zero coefficient (atan2(0, ε) = 0) and equal ones."""
    rng = np.random.default_rng(8)
    re0, im0, re1, im1 = rng.normal(size=(4, 200))
    im0[:20] = im1[:20] = 0  # real bins: phase 0 or π
    re0[20:30] = im0[20:30] = 0  # zero coefficient
    re1[30:40], im1[30:40] = re0[30:40], im0[30:40]  # equal coefficients
    same = np.zeros(200, bool)
    same[30:40] = True
    k = 1 - 1e-7
    phi0, phi1 = np.arctan2(im0, re0 + 1e-10), np.arctan2(im1, re1 + 1e-10)
    want = np.arccos(np.cos(phi0 - phi1) * k)
    with jax.enable_x64(True):
        got = phase.phase_parts(
            (jnp.asarray(re0), jnp.asarray(im0)),
            (jnp.asarray(re1), jnp.asarray(im1)),
            jnp.asarray(same),
        ).angle
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.all(np.asarray(got)[same] == np.arccos(k))


@pytest.mark.parametrize("re1,im1", [(-1e-10, 1.0), (-1e-10, -0.7), (0.3, 0.4), (-0.3, 0.4), (-1.0, 1e-3)])
def test_phase_term_derivative_matches_central_differences(re1, im1):
    """Including the input at a right angle to the target (cos = 0 exactly: re1 + ε = 0), where the
    formula switches between arccos(k|cos|) and π − arccos(k|cos|)."""

    def angle(re, im):
        return phase.phase_parts((jnp.array(1.0), jnp.array(0.0)), (re, im), jnp.array(False)).angle

    h = 1e-7
    with jax.enable_x64(True):
        grad = jax.grad(angle, argnums=(0, 1))(jnp.array(re1), jnp.array(im1))
        central = [
            (angle(jnp.array(re1 + h), jnp.array(im1)) - angle(jnp.array(re1 - h), jnp.array(im1))) / (2 * h),
            (angle(jnp.array(re1), jnp.array(im1 + h)) - angle(jnp.array(re1), jnp.array(im1 - h))) / (2 * h),
        ]
    np.testing.assert_allclose(np.asarray(grad), np.asarray(central), rtol=1e-6, atol=1e-8)


def test_amplitude_change_is_the_difference_of_amplitudes_and_exactly_zero_for_no_change():
    rng = np.random.default_rng(9)
    c0, c1 = rng.normal(size=(2, 2, 100))
    c1[:, :10] = c0[:, :10]
    c0[:, 10] = c1[:, 10] = -1e-10  # zero amplitude
    amp = lambda re, im: np.sqrt((re + 1e-10) ** 2 + (im + 1e-10) ** 2)  # noqa: E731
    with jax.enable_x64(True):
        got = masking.amplitudes(tuple(map(jnp.asarray, c0)), tuple(map(jnp.asarray, c1)))
    np.testing.assert_allclose(got.amp0, amp(*c0), rtol=1e-15)
    np.testing.assert_allclose(got.change, amp(*c1) - amp(*c0), atol=1e-14)
    assert np.all(np.asarray(got.change)[:11] == 0)
    for c, unit in [
        (c0, got.unit0),
        (c1, got.unit1),
    ]:  # the derivative of A: z / A, 0 at A = 0
        with np.errstate(invalid="ignore"):
            want = (c + 1e-10) / amp(*c)
        want[:, 10] = 0
        np.testing.assert_allclose(np.asarray(unit), want, rtol=1e-14)


def test_shift_pads_by_edge_replication_and_crops():
    x = np.arange(2 * 8 * 16 * 1, dtype=np.float32).reshape(2, 8, 16, 1)
    np.testing.assert_array_equal(blocks.shift(x, (4, 4)), x)  # exact: the shift only moves values
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    np.testing.assert_array_equal(blocks.shift(x, (1, 7)), padded[:, 1:9, 7:23])


def numpy_shift_sources(h, w, offset):
    """The source pixel (row, column) of every pixel of a shifted H×W image: edge padding by 4, then a
    crop."""
    rows = np.clip(np.arange(h) + offset[0] - 4, 0, h - 1)
    cols = np.clip(np.arange(w) + offset[1] - 4, 0, w - 1)
    return np.meshgrid(rows, cols, indexing="ij")


def test_shift_derivatives_are_the_shift_and_its_adjoint_for_every_offset():
    """The shift's hand-written JVP (and the transpose JAX takes of it) against numpy: forward mode moves the
    tangent like the image, reverse mode adds each pixel's cotangent into its source pixel; under vmap too."""
    rng = np.random.default_rng(8)
    shape = (2, 16, 24, 2)
    x, t, ct = (rng.normal(size=shape) for _ in range(3))
    with jax.enable_x64(True):
        shifted = lambda img, o: blocks.shift(img, o)  # noqa: E731
        jvp = jax.jit(lambda o: jax.jvp(lambda a: shifted(a, o), (jnp.asarray(x),), (jnp.asarray(t),)))
        vjp = jax.jit(lambda o: jax.vjp(lambda a: shifted(a, o), jnp.asarray(x))[1](jnp.asarray(ct))[0])
        batched = jax.jit(jax.vmap(vjp))
        offsets = [(sx, sy) for sx in range(8) for sy in range(8)]
        got_batched = np.asarray(batched(jnp.asarray(offsets)))
        for k, offset in enumerate(offsets):
            rows, cols = numpy_shift_sources(16, 24, offset)
            value, tangent = jvp(jnp.asarray(offset))
            np.testing.assert_array_equal(value, x[:, rows, cols])
            np.testing.assert_array_equal(tangent, t[:, rows, cols])
            adjoint = np.zeros(shape)
            np.add.at(adjoint, (slice(None), rows, cols), ct)
            np.testing.assert_allclose(vjp(jnp.asarray(offset)), adjoint, rtol=1e-14, atol=1e-14)
            np.testing.assert_allclose(got_batched[k], adjoint, rtol=1e-14, atol=1e-14)


def test_ssim_separable_filter_equals_the_2d_window_in_float32():
    maps = np.random.default_rng(3).uniform(size=(2, 24, 20, 5)).astype(np.float32)
    np.testing.assert_allclose(ssim._filter_separable(maps), ssim._filter_2d(maps), atol=2e-7)
    assert abs(float(ssim.gaussian_window().astype(np.float64).sum()) - (1 - 6.9e-8)) < 1e-9
