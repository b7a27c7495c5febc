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
