"""experiments.vae.frechet against closed forms."""

import numpy as np
import pytest

from experiments.vae import frechet


@pytest.mark.parametrize("use_scipy", [False, True])
def test_diagonal_gaussians_closed_form(use_scipy):
    """Diagonal covariances commute: FD = ‖Δμ‖² + Σ (√a − √b)²."""
    if use_scipy:
        pytest.importorskip("scipy")
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), use_scipy=use_scipy)
    assert got == pytest.approx(expected, rel=1e-10)


def test_rotated_covariances_and_identical_sets():
    """FD is invariant under a common rotation of both Gaussians, and 0 for one set against itself."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = rng.uniform(0.2, 2, 5), rng.uniform(0.2, 2, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    got = frechet.frechet_distance(q @ mu1, s1, q @ mu2, s2, use_scipy=False)
    assert got == pytest.approx(expected, rel=1e-9)
    features = rng.normal(size=(200, 4))
    assert frechet.frechet_distance_of_features(features, features, use_scipy=False) == pytest.approx(
        0, abs=1e-9
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="N >= 2"):
        frechet.statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet.statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
