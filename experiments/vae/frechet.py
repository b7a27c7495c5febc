"""The Fréchet distance between two sets of feature vectors (Heusel et al. 2017, "FID"), in float64.

Each set is summarised by its mean μ and covariance Σ (``numpy.cov``, rows are samples, ddof 1); the
distance of the Gaussians N(μ1, Σ1) and N(μ2, Σ2) is

    FD = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½).

Tr (Σ1 Σ2)^½ is computed from the symmetric form: (Σ1 Σ2)^½ is similar to (Σ1^½ Σ2 Σ1^½)^½, so its trace
is Σ √λ_i over the eigenvalues λ_i ≥ 0 of the symmetric positive semi-definite Σ1^½ Σ2 Σ1^½ (Σ1^½ from an
eigen-decomposition; negative round-off eigenvalues clipped to 0). That stays exact for singular
covariances (features that never vary, e.g. a ReLU unit that is 0 for every image), where
``scipy.linalg.sqrtm`` of Σ1 Σ2 warns and may be inaccurate; ``use_scipy=True`` takes the latter (the
usual FID code's choice) for comparison.
"""

from __future__ import annotations

import numpy as np


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) in float64 of an (N, D) feature matrix, N ≥ 2 (Σ with ddof 1)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be an (N, D) matrix with N >= 2; got shape {f.shape}.")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or infinite values.")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (round-off clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, *, use_scipy: bool = False) -> float:
    """Tr (Σ1 Σ2)^½ of two covariance matrices (module docstring): the symmetric eigen form, or
    ``scipy.linalg.sqrtm`` with ``use_scipy``."""
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if use_scipy:
        import scipy.linalg

        root = scipy.linalg.sqrtm(s1 @ s2)
        return float(np.real(np.trace(root)))
    r1 = _psd_sqrt(s1)
    values = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(np.sum(np.sqrt(np.clip(values, 0, None))))


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    *,
    use_scipy: bool = False,
) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) of two Gaussians, float64 (module docstring)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[-1]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shapes do not match: mu {mu1.shape}, {mu2.shape}; sigma {s1.shape}, {s2.shape} "
            "(expected (D,) and (D, D))."
        )
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2, use_scipy=use_scipy)
    return float(max(value, 0.0))


def frechet_distance_of_features(a: np.ndarray, b: np.ndarray, *, use_scipy: bool = False) -> float:
    """The Fréchet distance between the Gaussians fitted to two (N, D) feature matrices."""
    return frechet_distance(*statistics(a), *statistics(b), use_scipy=use_scipy)
