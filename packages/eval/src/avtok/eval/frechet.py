"""Fréchet distance between Gaussians fitted to feature sets (FID, frame FID, FVD, FAD).

``FrechetStats`` accumulates sums in float64 so features can be streamed batch by batch without
keeping them; ``frechet_distance`` uses the symmetric eigen form of the trace term,
``tr sqrt(S1 S2) = tr sqrt(sqrt(S1) S2 sqrt(S1))``, which stays real and stable when the covariances
are singular (fewer samples than feature dims, the usual case for small evaluation sets).

While a set has no more samples than feature dims, its centred features ``A`` (``S = A^T A``) are kept
too, and the trace term comes from a small matrix instead of two D x D eigendecompositions: the
non-zero eigenvalues of ``S1 S2`` are those of ``A S2 A^T`` (n1 x n1), or, with both factors, the
squared singular values of ``A1 A2^T`` (n1 x n2). Same number, ~100x faster for D = 2048.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avtok.eval.validation import check_finite

__all__ = ["FrechetStats", "GaussianStats", "frechet_distance", "sqrtm_psd"]


@dataclass(kw_only=True, frozen=True)
class GaussianStats:
    """Mean ``mu`` (D,) and covariance ``sigma`` (D, D), float64, fitted to ``count`` samples."""

    mu: torch.Tensor
    sigma: torch.Tensor
    count: int
    factor: torch.Tensor | None = None  # (N, D) centred features / sqrt(N - 1), kept while N <= D


class FrechetStats:
    """Streaming mean / covariance of D-dimensional features (float64 sums, any number of batches)."""

    def __init__(self, dim: int, *, name: str = "features") -> None:
        if dim < 1:
            raise ValueError(f"dim: expected a positive feature size, got {dim}")
        self.dim, self.name = dim, name
        self.count = 0
        self._sum = torch.zeros(dim, dtype=torch.float64)
        self._outer = torch.zeros(dim, dim, dtype=torch.float64)
        self._kept: list[torch.Tensor] | None = []  # raw features while count <= dim

    def update(self, feats: torch.Tensor) -> None:
        """Add a batch of features (N, D)."""
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"{self.name}: expected features (N, {self.dim}), got shape {tuple(feats.shape)}")
        check_finite(self.name, feats)
        f = feats.detach().to("cpu", torch.float64)  # (N, D)
        self.count += f.shape[0]
        self._sum += f.sum(0)
        self._outer += f.T @ f
        self._keep(f)

    def _keep(self, f: torch.Tensor) -> None:
        if self._kept is not None:
            self._kept.append(f)
            if self.count > self.dim:
                self._kept = None

    def merge(self, other: FrechetStats) -> None:
        """Fold another accumulator (e.g. from another worker) into this one."""
        if other.dim != self.dim:
            raise ValueError(f"{other.name}: feature size {other.dim} differs from {self.name}'s {self.dim}")
        self.count += other.count
        self._sum += other._sum
        self._outer += other._outer
        if self._kept is not None and other._kept is not None:
            self._keep(torch.cat(other._kept) if other._kept else torch.zeros(0, self.dim, dtype=torch.float64))
        else:
            self._kept = None

    def compute(self, *, min_samples: int = 2) -> GaussianStats:
        """Mean and unbiased covariance; needs at least ``min_samples`` (>= 2) samples."""
        need = max(2, min_samples)
        if self.count < need:
            raise ValueError(
                f"{self.name}: {self.count} samples but a Fréchet distance needs at least {need} "
                "(a covariance needs two); evaluate more clips or frames"
            )
        mu = self._sum / self.count
        sigma = (self._outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        factor = None
        if self._kept is not None:
            factor = (torch.cat(self._kept) - mu) / (self.count - 1) ** 0.5  # (N, D)
        return GaussianStats(mu=mu, sigma=0.5 * (sigma + sigma.T), count=self.count, factor=factor)


def stats_from_features(feats: torch.Tensor, *, name: str = "features", min_samples: int = 2) -> GaussianStats:
    """Fit a Gaussian to features (N, D) in one go."""
    if feats.ndim != 2:
        raise ValueError(f"{name}: expected features (N, D), got shape {tuple(feats.shape)}")
    acc = FrechetStats(feats.shape[1], name=name)
    acc.update(feats)
    return acc.compute(min_samples=min_samples)


def sqrtm_psd(mat: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix via eigh (negative rounding clamped)."""
    evals, evecs = torch.linalg.eigh(mat.double())
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def _trace_sqrt_product(a: GaussianStats, b: GaussianStats) -> torch.Tensor:
    """``tr sqrt(S_a S_b)`` by the cheapest exact route available."""
    if a.factor is not None and b.factor is not None:
        return torch.linalg.svdvals(a.factor @ b.factor.T).sum()  # (n_a, n_b)
    if b.factor is not None:
        a, b = b, a
    if a.factor is not None:
        small = a.factor @ b.sigma.double() @ a.factor.T  # (n_a, n_a), same non-zero spectrum as S_a S_b
    else:
        root_a = sqrtm_psd(a.sigma)
        small = root_a @ b.sigma.double() @ root_a  # (D, D)
    return torch.linalg.eigvalsh(0.5 * (small + small.T)).clamp_min(0).sqrt().sum()


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 sqrt(S_a S_b))`` in float64."""
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature sizes differ: {tuple(a.mu.shape)} vs {tuple(b.mu.shape)}; use one backbone")
    trace_sqrt = _trace_sqrt_product(a, b)
    mean_term = (a.mu.double() - b.mu.double()).square().sum()
    value = mean_term + torch.trace(a.sigma.double()) + torch.trace(b.sigma.double()) - 2.0 * trace_sqrt
    return float(value.clamp_min(0.0))
