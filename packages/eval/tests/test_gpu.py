"""GPU paths (skipped cleanly without CUDA): the same numbers on the device as on the CPU."""

import pytest
import torch

from avtok.eval.image_metrics import psnr, ssim
from avtok.eval.tokens import ThroughputMeter

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_image_metrics_on_cuda_match_cpu(natural_images):
    ref = (natural_images + 1) * 127.5  # SSIM on the 0..255 range
    noisy = (ref + 25).clamp(0, 255)
    cuda = ssim(noisy.cuda(), ref.cuda(), data_range=255).cpu()
    assert torch.allclose(cuda, ssim(noisy, ref, data_range=255), atol=1e-5)
    assert torch.allclose(psnr(noisy.cuda(), natural_images.cuda()).cpu(), psnr(noisy, natural_images))


def test_inception_on_cuda_matches_cpu(natural_images):
    from avtok.eval.inception import InceptionFeatures

    cpu = InceptionFeatures()(natural_images[:2])
    gpu = InceptionFeatures(device="cuda")(natural_images[:2])
    assert torch.allclose(cpu, gpu, rtol=1e-3, atol=1e-3)


def test_throughput_reports_cuda_peak_memory():
    meter = ThroughputMeter("cuda")
    meter.time(lambda: torch.ones(1024, 1024, device="cuda").sum())
    r = meter.result()
    assert r.memory_kind == "cuda_max_allocated" and r.peak_memory_mb >= 4.0
