"""Benchmark: avtok.eval metrics against their reference implementations, side by side in one run.

    python tools/bench_eval.py [--repeats 5]

- SSIM (Gaussian window) of avtok.eval vs scikit-image's structural_similarity on 16 real 256x256
  frames (scikit-image photographs), same settings, medians over --repeats.
- Fréchet distance on 2048-d features of 64 vs 64 samples (an evaluation set smaller than the feature
  size): avtok's low-rank route vs the dense eigen route (two 2048x2048 eigendecompositions), and the
  scipy.linalg.sqrtm formula (what pytorch-fid / fid-helper-pytorch use) as the baseline.

Targets: SSIM >= 1x scikit-image (same value within 1e-5); Fréchet distance >= 10x the scipy sqrtm baseline, same value (rel 1e-6).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.linalg
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from avtok.eval.frechet import frechet_distance, stats_from_features
from avtok.eval.image_metrics import ssim
from avtok.media_io import sample_path


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _frames() -> torch.Tensor:
    names = ["astronaut", "coffee", "chelsea", "motorcycle_left"]
    ims = [np.asarray(Image.open(sample_path(n)))[:256, :256, :3] for n in names]
    return torch.from_numpy(np.stack(ims * 4)).float()  # (16, 256, 256, 3) in 0..255, as the drivers score


def bench_ssim(repeats: int) -> float:
    ref = _frames()
    noisy = (ref + 12.75 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 255)
    r64, n64 = ref.double().numpy(), noisy.double().numpy()
    kw = dict(channel_axis=-1, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ours = _median_time(lambda: ssim(noisy, ref, data_range=255.0), repeats)
    base = _median_time(lambda: [structural_similarity(n64[i], r64[i], **kw) for i in range(16)], repeats)
    diff = max(abs(float(ssim(noisy[i], ref[i], data_range=255.0)) - structural_similarity(n64[i], r64[i], **kw))
               for i in range(4))
    print(f"ssim 16x256x256x3: avtok {ours * 1e3:.1f} ms, scikit-image {base * 1e3:.1f} ms, "
          f"ratio {base / ours:.2f}x, max |diff| {diff:.2e}")
    return base / ours


def bench_frechet(repeats: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 2048, generator=g), torch.randn(64, 2048, generator=g) * 1.1 + 0.1
    sa, sb = stats_from_features(a), stats_from_features(b)
    dense_a = type(sa)(mu=sa.mu, sigma=sa.sigma, count=sa.count)
    dense_b = type(sb)(mu=sb.mu, sigma=sb.sigma, count=sb.count)

    def scipy_fd() -> float:
        s1, s2 = sa.sigma.numpy(), sb.sigma.numpy()
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        return float(((sa.mu - sb.mu) ** 2).sum()) + float(np.trace(s1 + s2 - 2 * covmean))

    ours = _median_time(lambda: frechet_distance(sa, sb), repeats)
    dense = _median_time(lambda: frechet_distance(dense_a, dense_b), 1)  # tens of seconds each: once
    base = _median_time(scipy_fd, 1)
    v_ours, v_base = frechet_distance(sa, sb), scipy_fd()
    rel = abs(v_ours - v_base) / abs(v_base)
    print(f"frechet 64 vs 64 x 2048: low-rank {ours * 1e3:.1f} ms, dense eigen {dense * 1e3:.0f} ms, "
          f"scipy sqrtm {base * 1e3:.0f} ms; values {v_ours:.6f} vs {v_base:.6f} (rel {rel:.1e})")
    return base / ours, rel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ssim_ratio = bench_ssim(args.repeats)
    fd_ratio, rel = bench_frechet(args.repeats)
    print(f"target ssim_vs_skimage: {ssim_ratio:.2f}x (goal >= 1x) {'met' if ssim_ratio >= 1 else 'missed'}")
    ok = fd_ratio >= 10 and rel < 1e-6
    print(f"target frechet_vs_scipy_sqrtm: {fd_ratio:.1f}x at rel diff {rel:.1e} (goal >= 10x, rel < 1e-6) "
          f"{'met' if ok else 'missed'}")


if __name__ == "__main__":
    main()
