"""Helpers shared by the tests (imported as ``helpers``; pytest puts tests/ on sys.path)."""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WATSON_JAX_SHARED", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"
ORIGINAL_WEIGHTS = SHARED / "original_weights"
#: Set (as .ci/run does) to make a missing shared input a test failure instead of a skip.
REQUIRE_SHARED_VAR = "WATSON_JAX_REQUIRE_SHARED"


def shared(*parts: str) -> Path:
    """The path ``$WATSON_JAX_SHARED/<parts>`` (default ../shared beside the repository) of a shared test
    input (golden fixtures, original weights, data sets). When it does not exist the calling test is
    skipped with a reason naming the path and how to point at it, or fails when $WATSON_JAX_REQUIRE_SHARED
    is set, so that CI cannot pass by skipping."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = (
            f"shared test input {path} is missing; set WATSON_JAX_SHARED to the folder holding "
            "golden/, original_weights/ and data/"
        )
        if os.environ.get(REQUIRE_SHARED_VAR):
            pytest.fail(f"{reason} (${REQUIRE_SHARED_VAR} is set: missing inputs fail)")
        pytest.skip(reason)
    return path


def original_weights(name: str) -> Path:
    """One file of the original weights (``$WATSON_JAX_SHARED/original_weights/<name>``), through
    :func:`shared` (skipped, or failed under $WATSON_JAX_REQUIRE_SHARED, when missing)."""
    return shared("original_weights", name)


def load_golden(name: str) -> dict:
    """One golden file as a dict of arrays, through :func:`shared` (skipped, or failed under
    $WATSON_JAX_REQUIRE_SHARED, when missing)."""
    with np.load(shared("golden", f"{name}.npz")) as data:
        return {k: data[k] for k in data.files}


def nhwc(a: np.ndarray) -> np.ndarray:
    """NCHW (the golden files' layout) → NHWC."""
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


def nchw(a) -> np.ndarray:
    """NHWC → NCHW, to compare with the golden arrays."""
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


@jax.jit
def value_and_grad(loss, x, y):
    """Loss value and its gradient w.r.t. the input x; the loss travels as a pytree (one compile per
    configuration and shape, shared by every test)."""
    return jax.value_and_grad(lambda x_: loss(x_, y))(x)


@jax.jit
def forward(loss, x, y):
    return loss(x, y)


def rel_l2(a, b) -> float:
    """‖a − b‖ / ‖b‖."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# Adaptive float64 against the golden files (used by the JAX and the torch tests).
# The golden files hold no float64 map or gradient for Adaptive, only the float32 ones and, per pair, the
# float32 gradient's distance from the float64 one (grad_input_f32_vs_f64 = ‖g32 − g64‖ / ‖g64‖).
# Measured over the four files, pretrained and initial (2026-12-07; JAX and torch agree to the digit):
# - |‖g32 − ours64‖ / ‖ours64‖ − grad_input_f32_vs_f64| ≤ 1.2e-8, against values of 1.4e-7…2.6e-7 → 5e-8.
#   It bounds ours64's distance from the golden float64 gradient along g32 − g64 by 5e-8 and across it
#   by √(2·5e-8·2.6e-7) ≈ 1.6e-7 (relative); a float32 gradient would show 1.4e-7 or more.
# - the float64 map against the float32 golden map: max |Δ| ≤ 1.8e-7·max |ref| (float32 rounding of the
#   golden map; the golden README measures 2.0e-7) → 1e-6.
F64_GRAD_VS_GOLDEN = 5e-8
F64_MAP_VS_F32 = 1e-6


def check_adaptive_float64_map_and_gradient(golden, suffix, nll, grad, nll_at_zero):
    """The float64 map and input gradient (NCHW) against the golden float32 arrays; at the identical pair
    the gradient is exactly 0 and the map is exactly the NLL at x − y = 0, log c + log Z(α), which does not
    depend on the images (compared with the map of a constant pair, bit for bit)."""
    assert nll.dtype == grad.dtype == np.float64
    want_map = golden[f"value_none{suffix}"]
    assert nll.shape == want_map.shape
    assert np.max(np.abs(nll - want_map)) <= F64_MAP_VS_F32 * np.max(np.abs(want_map))
    i = int(golden["identical_pair_index"])
    for p, measured in enumerate(golden[f"grad_input{suffix}_f32_vs_f64"]):
        if p == i:
            assert np.all(grad[p] == 0)
            np.testing.assert_array_equal(nll[p], nll_at_zero[0])
        else:
            got = rel_l2(golden[f"grad_input{suffix}"][p], grad[p])
            assert abs(got - measured) <= F64_GRAD_VS_GOLDEN, (p, got, measured)
