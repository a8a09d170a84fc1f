import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from avtok.eval.image_metrics import mse, psnr, psnr_from_mse, ssim


def test_psnr_constant_offset_is_closed_form(natural_images):
    x = natural_images * 0.5  # keep x + d inside [-1, 1]
    for d in (0.01, 0.1, 0.25):
        got = psnr(x + d, x)  # MSE = d^2 exactly
        assert torch.allclose(got, torch.full_like(got, 10 * math.log10(4.0 / d**2)), atol=1e-6)


def test_psnr_gaussian_noise_matches_noise_level_and_skimage(natural_images):
    g = torch.Generator().manual_seed(0)
    sigma = 0.05
    noisy = natural_images + sigma * torch.randn(natural_images.shape, generator=g)
    got = psnr(noisy, natural_images)
    expected = 10 * math.log10(4.0 / sigma**2)  # ≈ 32.04 dB
    assert torch.allclose(got, torch.full_like(got, expected), atol=0.1)
    ref = peak_signal_noise_ratio(natural_images[0].numpy(), noisy[0].numpy(), data_range=2.0)
    assert got[0].item() == pytest.approx(ref, abs=1e-4)
    assert psnr_from_mse(sigma**2) == pytest.approx(expected)


def _uint8_range(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round()  # [-1, 1] -> 0..255 floats


@pytest.mark.parametrize("gaussian", [True, False])
def test_ssim_agrees_with_skimage_on_real_images(natural_images, gaussian):
    g = torch.Generator().manual_seed(1)
    ref8 = _uint8_range(natural_images)
    degraded = (ref8 + 25 * torch.randn(ref8.shape, generator=g)).clamp(0, 255)
    got = ssim(degraded, ref8, gaussian=gaussian, data_range=255)
    for i in range(natural_images.shape[0]):
        kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if gaussian else {}
        ref = structural_similarity(degraded[i].numpy().astype(np.float64), ref8[i].numpy().astype(np.float64),
                                    channel_axis=-1, data_range=255, **kw)
        assert abs(got[i].item() - ref) < 1e-5
    assert (got < 0.95).all()  # noise must cost structure


def test_ssim_row_bands_equal_whole_frames(natural_images):
    """A frame larger than one block is scored in overlapping row bands: the same number."""
    g = torch.Generator().manual_seed(2)
    ref8 = _uint8_range(natural_images[:2]).to(torch.uint8)
    noisy = (ref8 + 20 * torch.randn(ref8.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    whole = ssim(noisy, ref8, data_range=255)
    banded = ssim(noisy, ref8, data_range=255, block_values=128 * 3 * 17)  # 7-row bands, 1 frame per block
    assert torch.allclose(whole, banded, rtol=0, atol=1e-9)
    assert torch.allclose(mse(noisy, ref8), mse(noisy, ref8, block_values=100), rtol=1e-6, atol=0)


def test_ssim_video_is_per_frame_and_identity_is_one(natural_images):
    video = _uint8_range(natural_images[:4])  # (T, H, W, 3)
    assert torch.allclose(ssim(video, video, data_range=255), torch.ones(4, dtype=torch.float64))
    shifted = torch.roll(video, 3, dims=2)
    per_frame = ssim(shifted, video, data_range=255)
    assert per_frame.shape == (4,) and (per_frame[:3] < 0.9).all()
    for t in range(4):  # each entry is that frame's own SSIM
        assert per_frame[t].item() == pytest.approx(ssim(shifted[t], video[t], data_range=255).item(), abs=1e-12)


def test_bad_inputs_raise_clear_errors(natural_images):
    with pytest.raises(ValueError, match="shape"):
        psnr(natural_images[:, :64], natural_images)
    bad = natural_images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ssim(bad, natural_images, data_range=2.0)
    with pytest.raises(ValueError, match=r"negative values .* data_range=255"):
        ssim(natural_images, natural_images, data_range=2.0)  # [-1, 1] frames: not the standard SSIM
    small = _uint8_range(natural_images[:, :8, :8])
    with pytest.raises(ValueError, match="smaller than"):
        ssim(small, small, data_range=255)
