"""Full-reference image and video metrics: PSNR and SSIM over channel-last frames.

Frames are ``(..., H, W, C)`` float tensors (``AVClip.video_float()`` gives ``[-1, 1]``, hence
``data_range=2.0`` by default). Every leading dim is a frame index, so a video ``(T, H, W, C)`` yields
one value per frame; average them for the clip score ("per frame, averaged").
"""

from __future__ import annotations

import math

import torch

from avtok.eval.validation import check_min_ndim, check_pair

__all__ = ["psnr", "ssim"]


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per frame: ``10 log10(data_range^2 / MSE)``.

    pred, target: (..., H, W, C). Returns (...) float64; identical frames give ``inf``.
    """
    check_pair("pred", pred, "target", target)
    check_min_ndim("pred", pred, 3, "(..., H, W, C)")
    diff = pred.double() - target.double()
    mse = diff.square().flatten(-3).mean(-1)  # (...)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_kernel(sigma: float, truncate: float) -> torch.Tensor:
    # scipy.ndimage.gaussian_filter's kernel, as scikit-image's SSIM uses it.
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()  # (2r+1,)


def _filter_dim(x: torch.Tensor, taps: list[float], dim: int) -> torch.Tensor:
    """'Valid' 1-D filter along ``dim`` as a sum of shifted slices (memory-bound, no im2col)."""
    n = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, n) * taps[0]
    for j, w in enumerate(taps[1:], start=1):
        out.add_(x.narrow(dim, j, n), alpha=w)
    return out


def _window_filter(x: torch.Tensor, k1d: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filter over (N, H, W); equals scikit-image's filter-then-crop.

    Shifted-slice sums in float32: on CPU ~2x faster than banded matmuls and ~4x faster than a
    1-channel conv2d; agrees with scikit-image's float64 SSIM to ~1e-6.
    """
    taps = k1d.tolist()
    return _filter_dim(_filter_dim(x, taps, -1), taps, -2)  # (N, H, W') -> (N, H', W')


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 2.0,
    gaussian: bool = True,
    sigma: float = 1.5,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per frame, mean over pixels and channels.

    Matches ``skimage.metrics.structural_similarity(..., channel_axis=-1, data_range=data_range)``:
    ``gaussian=True`` is its ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``
    (Wang et al. 2004); ``gaussian=False`` is its default uniform ``win_size`` window with sample
    covariance. pred, target: (..., H, W, C). Returns (...) float64.
    """
    check_pair("pred", pred, "target", target)
    check_min_ndim("pred", pred, 3, "(..., H, W, C)")
    lead, (h, w, c) = pred.shape[:-3], pred.shape[-3:]
    if gaussian:
        k1d = _gaussian_kernel(sigma, truncate=3.5)
        cov_norm = 1.0
    else:
        k1d = torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)
        cov_norm = win_size**2 / (win_size**2 - 1.0)
    if h < k1d.numel() or w < k1d.numel():
        raise ValueError(
            f"pred: frames of {h}x{w} are smaller than the {k1d.numel()}-pixel SSIM window; "
            "use larger frames or a smaller sigma / win_size"
        )
    x = pred.float().reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(-1, h, w)  # (N*C, H, W)
    y = target.float().reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(-1, h, w)
    moments = _window_filter(torch.cat([x, y, x * x, y * y, x * y]), k1d).chunk(5)  # one batched filter
    ux, uy, xx, yy, xy = moments
    vx = cov_norm * (xx - ux * ux)
    vy = cov_norm * (yy - uy * uy)
    vxy = cov_norm * (xy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    per_channel = s_map.flatten(1).double().mean(-1).view(-1, c)  # (N, C)
    return per_channel.mean(-1).reshape(lead)


def psnr_from_mse(mse: float, *, data_range: float = 2.0) -> float:
    """PSNR of a known mean squared error (closed form used by tests and baselines)."""
    return 10.0 * math.log10(data_range**2 / mse)
