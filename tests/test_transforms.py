"""The building blocks against independent numpy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from watson_jax import blocks
from watson_jax.color import rgb_to_ycbcr
from watson_jax.losses import ssim


@pytest.fixture(params=sorted(blocks.DFT_IMPLEMENTATIONS))
def dft(request, monkeypatch):
    """Each selectable block-DFT implementation, chosen through the module-level override."""
    monkeypatch.setattr(blocks, "dft_override", request.param)
    return blocks.block_dft


def test_block_dft_equals_numpy_rfft2_per_block_divided_by_64(dft):
    x = np.random.default_rng(0).uniform(size=(2, 16, 24)).astype(np.float64)
    with jax.enable_x64(True):
        re, im = dft(jnp.asarray(x))
    tiles = x.reshape(2, 2, 8, 3, 8).transpose(0, 1, 3, 2, 4)
    want = np.fft.rfft2(tiles) / 64
    assert re.dtype == jnp.float64
    np.testing.assert_allclose(re, want.real, atol=1e-15)
    np.testing.assert_allclose(im, want.imag, atol=1e-15)


def test_block_dft_of_blocks_constant_along_an_axis_has_exact_zeros(dft):
    """Like an FFT (and unlike a matrix product), rows or columns that are constant give exact zeros."""
    rng = np.random.default_rng(1)
    cols = np.broadcast_to(rng.uniform(size=(1, 1, 8)), (1, 8, 8)).astype(np.float32)   # constant along H
    re, im = dft(jnp.asarray(cols))
    assert np.all(np.asarray(re)[0, 0, 0, 1:, :] == 0) and np.all(np.asarray(im)[0, 0, 0, 1:, :] == 0)
    rows = np.broadcast_to(rng.uniform(size=(1, 8, 1)), (1, 8, 8)).astype(np.float32)   # constant along W
    re, im = dft(jnp.asarray(rows))
    assert np.all(np.asarray(re)[0, 0, 0, :, 1:] == 0) and np.all(np.asarray(im)[0, 0, 0, :, 1:] == 0)
    flat = np.full((1, 8, 8), 0.37, np.float32)
    re, im = dft(jnp.asarray(flat))
    assert np.count_nonzero(np.asarray(re)) == 1 and np.count_nonzero(np.asarray(im)) == 0


def test_block_dft_implementations_agree_in_float32():
    x = jnp.asarray(np.random.default_rng(4).uniform(size=(3, 16, 16)).astype(np.float32))
    (re_b, im_b), (re_f, im_f) = (jax.jit(f)(x) for f in (blocks.block_dft_butterflies, blocks.block_dft_fft))
    np.testing.assert_allclose(re_b, re_f, atol=1e-7)
    np.testing.assert_allclose(im_b, im_f, atol=1e-7)


def test_block_dft_choice_per_backend_and_overrides(monkeypatch):
    monkeypatch.delenv(blocks.DFT_ENV_VAR, raising=False)
    monkeypatch.setattr(blocks, "dft_override", None)
    assert blocks.dft_implementation() == blocks.DFT_BY_BACKEND[jax.default_backend()]
    assert set(blocks.DFT_BY_BACKEND.values()) <= set(blocks.DFT_IMPLEMENTATIONS)   # never a matmul DFT
    monkeypatch.setenv(blocks.DFT_ENV_VAR, "fft")
    assert blocks.dft_implementation() == "fft"
    monkeypatch.setattr(blocks, "dft_override", "butterflies")           # the module setting wins
    assert blocks.dft_implementation() == "butterflies"
    monkeypatch.setattr(blocks, "dft_override", "matmul")
    with pytest.raises(ValueError, match="butterflies"):
        blocks.dft_implementation()


def test_block_dct_is_orthonormal_dct_ii():
    x = np.random.default_rng(2).uniform(size=(1, 8, 16))
    n = np.arange(8)
    a = np.sqrt(2 / 8) * np.where(n[:, None] == 0, 1 / np.sqrt(2), 1) * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16)
    with jax.enable_x64(True):
        got = np.asarray(blocks.block_dct(jnp.asarray(x)))
    for b in range(2):
        np.testing.assert_allclose(got[0, 0, b], a @ x[0, :, 8 * b:8 * b + 8] @ a.T, atol=1e-7)  # float32 matrix
    np.testing.assert_allclose(got[0, 0, 0, 0, 0], 8 * x[0, :, :8].mean(), rtol=1e-6)


def test_shift_pads_by_edge_replication_and_crops():
    x = np.arange(2 * 8 * 16 * 1, dtype=np.float32).reshape(2, 8, 16, 1)
    np.testing.assert_array_equal(blocks.shift(x, (4, 4)), x)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    np.testing.assert_array_equal(blocks.shift(x, (1, 7)), padded[:, 1:9, 7:23])


def test_ycbcr():
    rgb = np.array([[[[1.0, 0.0, 0.0]]]], np.float32)
    np.testing.assert_allclose(rgb_to_ycbcr(rgb)[0, 0, 0], [0.299, 0.5 - 0.1687, 1.0], rtol=1e-6)


def test_ssim_separable_filter_equals_the_2d_window_in_float32():
    maps = np.random.default_rng(3).uniform(size=(2, 24, 20, 5)).astype(np.float32)
    np.testing.assert_allclose(ssim._filter_separable(maps), ssim._filter_2d(maps), atol=2e-7)
    assert abs(float(ssim.gaussian_window().astype(np.float64).sum()) - (1 - 6.9e-8)) < 1e-9
