import numpy as np
import pytest
import scipy.linalg
import torch

from avtok.eval.frechet import FrechetStats, GaussianStats, frechet_distance, stats_from_features


def _g(mu, sigma):
    return GaussianStats(mu=torch.as_tensor(mu, dtype=torch.float64), sigma=torch.as_tensor(sigma, dtype=torch.float64),
                         count=10)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    s1, s2 = rng.uniform(0.1, 2, 16), rng.uniform(0.1, 2, 16)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(_g(mu1, np.diag(s1)), _g(mu2, np.diag(s2))) == pytest.approx(expected, rel=1e-10)


def test_full_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(64, 12)), rng.normal(size=(64, 12)) * 1.5 + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu1, mu2 = a.mean(0), b.mean(0)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    got = frechet_distance(stats_from_features(torch.tensor(a)), stats_from_features(torch.tensor(b)))
    assert got == pytest.approx(expected, rel=1e-8)


def test_streaming_equals_one_shot_and_merge():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(2))
    one = stats_from_features(x)
    acc, other = FrechetStats(8), FrechetStats(8)
    for chunk in x[:30].split(7):
        acc.update(chunk)
    other.update(x[30:])
    acc.merge(other)
    streamed = acc.compute()
    assert torch.allclose(streamed.mu, x.double().mean(0))
    assert torch.allclose(streamed.sigma, torch.from_numpy(np.cov(x.double().numpy(), rowvar=False)))
    assert torch.allclose(one.sigma, streamed.sigma)


def test_identical_singular_sets_give_zero():
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(3))  # N < D: singular covariance
    s = stats_from_features(x)
    assert frechet_distance(s, s) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(s, stats_from_features(x + 1.0)) == pytest.approx(64.0, rel=1e-6)  # mean shift only


def test_too_few_samples_and_bad_features():
    acc = FrechetStats(4, name="gen feats")
    acc.update(torch.randn(1, 4))
    with pytest.raises(ValueError, match="gen feats: 1 samples.*at least 2"):
        acc.compute()
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        acc.update(torch.randn(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(torch.full((2, 4), float("nan")))


def test_low_rank_routes_match_the_dense_eigen_route():
    g = torch.Generator().manual_seed(4)
    small_a, small_b = torch.randn(6, 40, generator=g), torch.randn(9, 40, generator=g) * 2 + 0.5
    big = torch.randn(100, 40, generator=g)  # N > D: no factor kept
    sa, sb, sbig = (stats_from_features(x) for x in (small_a, small_b, big))
    assert sa.factor is not None and sbig.factor is None
    dense = lambda s: GaussianStats(mu=s.mu, sigma=s.sigma, count=s.count)  # noqa: E731
    for x, y in ((sa, sb), (sa, sbig), (sbig, sb)):
        assert frechet_distance(x, y) == pytest.approx(frechet_distance(dense(x), dense(y)), rel=1e-7)
