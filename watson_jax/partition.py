"""The log-partition function log Z(α) of Barron's distribution (CVPR 2019), as a cubic Hermite spline.

Barron's density on x with shape α ≥ 0 and scale 1 is exp(−ρ(x, α)) / Z(α), with
ρ(x, α) = (|α − 2|/α)·(((x²/|α − 2|) + 1)^(α/2) − 1) (limits: log(x²/2 + 1) at α = 0, x²/2 at α = 2,
exp(x²/2) − 1 as α → ∞), so Z(α) = ∫ exp(−ρ(x, α)) dx. log Z is evaluated as a cubic Hermite spline in a
compressed coordinate (docs/reference.md §7):

  xs(α) = (2.25α − 4.5)/(|α − 2| + 0.25) + α + 2  for α < 4,   5/18·log(4α − 15) + 8  otherwise,

with knots at xs = 0, 1/1024, …, 12 (12289 knots).

The library builds that table itself:
1. log Z at the knots and at 3 points between each pair (``REDUNDANCY`` = 4) by numerical integration:
   Z = 2∫_{−∞}^{∞} exp(−ρ(eᵘ, α)) eᵘ du, the trapezoid rule on a uniform grid in u = log x, which
   converges geometrically for this smooth, exponentially decaying integrand (heavy tails included);
2. tangents initialised by central differences of the knot values; the last knot pinned to
   log Z(∞) with tangent 0;
3. a minimax refinement of values and tangents, the procedure of Barron's own table generator
   (``fit_partition_spline.py``: momentum SGD on the maximum spline error over all samples); it only
   moves the knots next to α = 0 and α = 2, where log Z is least smooth.
This takes about 20 s on a 2-core CPU and is cached after the first use (in memory, and as
``log_partition_spline.npz`` in the weights folder). It agrees with Barron's shipped
``partition_spline.npz`` within 1e-6 at every knot (measured: 1.1e-7 for values, 5e-8 for tangents); the
converter can import that file instead (``watson-jax convert --partition-spline PATH``).
"""

from __future__ import annotations

import functools
import os
import tempfile
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import weights
from .errors import WeightsError

X_SCALE = 1024
X_MAX = 12
REDUNDANCY = 4
TABLE_FILE = "log_partition_spline.npz"


def curve(alpha):
    """xs(α), the compressed coordinate of the spline (numpy or jax arrays)."""
    xp = np if isinstance(alpha, (np.ndarray, float)) else jnp
    low = (2.25 * alpha - 4.5) / (xp.abs(alpha - 2) + 0.25) + alpha + 2
    high = 5 / 18 * xp.log(xp.maximum(4 * alpha - 15, 1)) + 8  # the max keeps the unused branch finite
    return xp.where(alpha < 4, low, high)


def inverse_curve(xs: np.ndarray) -> np.ndarray:
    """α with xs(α) = xs, by bisection (xs is increasing in α)."""
    lo, hi = np.zeros_like(xs), np.full_like(xs, 1e7)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        below = curve(mid) < xs
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _rho(z: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """ρ as a function of z = x², exact in float64, with its limits at α = 0 and α = 2."""
    b = np.abs(alpha - 2)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        general = (b / alpha) * np.expm1(0.5 * alpha * np.log1p(z / b))
    return np.where(alpha < 1e-12, np.log1p(z / 2), np.where(b < 1e-12, z / 2, general))


def log_partition_numeric(alpha: np.ndarray, *, points: int = 8001, chunk: int = 512) -> np.ndarray:
    """log Z(α) by the trapezoid rule in u = log x over [−40, 40] (float64)."""
    u = np.linspace(-40.0, 40.0, points)
    x = np.exp(u)
    out = np.empty(len(alpha))
    for start in range(0, len(alpha), chunk):
        a = np.asarray(alpha[start : start + chunk], np.float64)[:, None]
        integrand = np.exp(-_rho(x * x, a)) * x
        out[start : start + chunk] = np.log(2 * np.trapezoid(integrand, dx=u[1] - u[0], axis=1))
    return out


def log_partition_at_infinity() -> float:
    """log Z(∞) = log ∫ exp(1 − exp(x²/2)) dx."""
    u = np.linspace(-40.0, 5.0, 200001)
    x = np.exp(u)
    with np.errstate(over="ignore"):
        integrand = np.exp(1 - np.exp(x * x / 2)) * x
    return float(np.log(2 * np.trapezoid(integrand, dx=u[1] - u[0])))


def _hermite_basis(t):
    h01 = -2 * t**3 + 3 * t**2
    h11 = t**3 - t**2
    return 1 - h01, h01, h11 - t**2 + t, h11  # h00, h01, h10, h11


def fit_spline(
    samples: np.ndarray,
    last_value: float,
    *,
    iterations: int = 10001,
    learning_rate: float = 1e-9,
    momentum: float = 0.99,
) -> tuple[np.ndarray, np.ndarray]:
    """Knot values and tangents (per knot step) of the spline through ``samples``, taken every
    1/REDUNDANCY knot: central differences, then minimax refinement by momentum SGD on max |error|."""
    values = samples[::REDUNDANCY].copy()
    n = len(values)
    padded = np.concatenate([[2 * values[0] - values[1]], values, [2 * values[-1] - values[-2]]])
    tangents = (padded[2:] - padded[:-2]) / 2
    position = np.arange(len(samples)) / REDUNDANCY
    knot = np.clip(np.floor(position).astype(int), 0, n - 2)
    h00, h01, h10, h11 = _hermite_basis(position - knot)
    pinned = np.arange(n) == n - 1
    velocity_v, velocity_t = np.zeros(n), np.zeros(n)
    for _ in range(iterations):
        v = np.where(pinned, last_value, values)
        m = np.where(pinned, 0.0, tangents)
        error = v[knot] * h00 + v[knot + 1] * h01 + m[knot] * h10 + m[knot + 1] * h11 - samples
        j = np.argmax(np.abs(error))
        sign = np.sign(error[j])
        grad_v, grad_t = np.zeros(n), np.zeros(n)
        grad_v[[knot[j], knot[j] + 1]] += sign * np.array([h00[j], h01[j]])
        grad_t[[knot[j], knot[j] + 1]] += sign * np.array([h10[j], h11[j]])
        grad_v[pinned] = grad_t[pinned] = 0
        velocity_v = momentum * velocity_v - learning_rate * grad_v
        velocity_t = momentum * velocity_t - learning_rate * grad_t
        values, tangents = values + velocity_v, tangents + velocity_t
    return np.where(pinned, last_value, values), np.where(pinned, 0.0, tangents)


def compute_table() -> dict[str, np.ndarray]:
    """The spline table {values, tangents, x_scale}, computed from the integral (see the module docstring)."""
    xs = np.arange(0, X_MAX * X_SCALE * REDUNDANCY + 1) / (X_SCALE * REDUNDANCY)
    samples = log_partition_numeric(inverse_curve(xs))
    values, tangents = fit_spline(samples, log_partition_at_infinity())
    return {"values": values, "tangents": tangents, "x_scale": np.asarray(X_SCALE)}


def save_table(path: Path, table: dict, source: str) -> Path:
    """Write a table atomically (a temporary file renamed into place), so that concurrent processes never
    read a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                values=np.asarray(table["values"], np.float64),
                tangents=np.asarray(table["tangents"], np.float64),
                x_scale=np.asarray(table["x_scale"]),
                __source__=np.asarray(source),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _cached_table.cache_clear()
    return path


def read_table(path: Path) -> dict[str, np.ndarray]:
    """A spline table file (ours, or Barron's ``partition_spline.npz``), checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            table = {k: np.asarray(data[k]) for k in ("values", "tangents", "x_scale")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise WeightsError(
            f"{path} is not a valid log-partition table ({type(err).__name__}: {err}); delete it "
            "to recompute it, or import Barron's with watson-jax convert --partition-spline."
        ) from err
    n = X_MAX * X_SCALE + 1
    if (
        table["values"].shape != (n,)
        or table["tangents"].shape != (n,)
        or int(table["x_scale"]) != X_SCALE
        or not np.all(np.isfinite(table["values"]))
        or not np.all(np.isfinite(table["tangents"]))
    ):
        raise WeightsError(f"{path} is not a log-partition table of {n} knots with x_scale {X_SCALE}.")
    return table


@functools.cache
def _cached_table(folder: str) -> dict[str, np.ndarray]:
    path = Path(folder) / TABLE_FILE
    if path.is_file():
        return read_table(path)
    table = compute_table()
    try:
        save_table(path, table, "computed by watson_jax.partition")
    except OSError:  # a read-only folder: keep the table in memory only
        pass
    return table


def table(directory: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The spline table: from ``<weights folder>/log_partition_spline.npz``, else computed and saved there."""
    return _cached_table(str(weights.weights_dir(directory)))


def log_partition(alpha: jax.Array, values: jax.Array, tangents: jax.Array) -> jax.Array:
    """log Z(α) for α ≥ 0 by the cubic Hermite spline over (values, tangents), in α's dtype."""
    xs = curve(alpha) * X_SCALE
    n = values.shape[0]
    knot = jnp.floor(jnp.clip(xs, 0, n - 2)).astype(jnp.int32)
    h00, h01, h10, h11 = _hermite_basis(xs - knot)
    return values[knot] * h00 + values[knot + 1] * h01 + tangents[knot] * h10 + tangents[knot + 1] * h11
