"""LPIPS (Zhang et al. 2018, VGG variant) from weights at local paths; a clear error when they are absent.

Two files are needed and neither may be downloaded at run time:

- the VGG16 backbone in torchvision's layout (``vgg16-397923af.pth``, keys ``features.N.weight``); when
  not given, torch hub's local cache (``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``) is
  looked at (never fetched);
- the LPIPS linear heads (``vgg.pth`` of the ``lpips`` package, keys ``linK.model.1.weight``). When the
  ``lpips`` package is installed its bundled file is found automatically.

Distance: unit-normalise each of the five ReLU feature maps over channels, square the difference,
weight channels with the linear head, average over space and sum over layers. Inputs ``(N, H, W, 3)``
in ``[-1, 1]``; output ``(N,)``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from avtok.eval.validation import check_min_ndim, check_pair

__all__ = ["LPIPS", "vgg16_features", "lpips_heads_path", "cached_vgg16_path", "VGG16_TAPS", "LPIPS_SHIFT",
           "LPIPS_SCALE"]

# torchvision vgg16 "D" configuration; LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG16_TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2 .. relu5_3 in vgg16_features()
_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's ScalingLayer for inputs in [-1, 1]: (x - shift) / scale.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
_SHIFT = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
_SCALE = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3, with the same module indices (state-dict keys)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    return nn.Sequential(*layers)


def cached_vgg16_path() -> Path | None:
    """torchvision's VGG16 file in the local torch hub cache, if a previous download left it there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / "vgg16-397923af.pth"
    return path if path.is_file() else None


def lpips_heads_path() -> Path | None:
    """``weights/v0.1/vgg.pth`` of an installed ``lpips`` package, if any (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "vgg.pth"
    return path if path.is_file() else None


def _require(path: str | Path | None, what: str) -> Path:
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(
            f"LPIPS needs {what} at a local path (got {path!r}); no VGG16 backbone ships on PyPI and "
            "avtok never downloads weights. Pass backbone_path=<vgg16-397923af.pth> (or place it in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'}) and "
            "heads_path=<lpips weights/v0.1/vgg.pth> (or pip install lpips for the heads)"
        )
    return Path(path)


class LPIPS(nn.Module):
    """LPIPS-VGG distance; weights from ``backbone_path`` and ``heads_path`` (local files only)."""

    def __init__(self, *, backbone_path: str | Path | None = None, heads_path: str | Path | None = None) -> None:
        super().__init__()
        backbone = _require(backbone_path or cached_vgg16_path(), "VGG16 backbone weights (torchvision layout)")
        heads = _require(heads_path or lpips_heads_path(), "LPIPS linear-head weights (vgg.pth)")
        self.features = vgg16_features()
        state = torch.load(backbone, map_location="cpu", weights_only=True)
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(feats, strict=False)  # classifier / layers after relu5_3 unused
        missing = [k for k in self.features.state_dict() if k not in feats]
        if missing:
            raise ValueError(f"{backbone}: not a torchvision VGG16 state dict (missing {missing[:3]}...)")
        lin = torch.load(heads, map_location="cpu", weights_only=True)
        self.heads = nn.ParameterList(
            [nn.Parameter(lin[f"lin{i}.model.1.weight"].reshape(1, c, 1, 1), requires_grad=False)
             for i, c in enumerate(_CHANNELS)])
        self.eval().requires_grad_(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_TAPS:
                out.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))  # unit norm over C
        return out

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair("pred", pred, "target", target)
        check_min_ndim("pred", pred, 4, "(N, H, W, 3)")
        to_nchw = lambda t: (t.float().permute(0, 3, 1, 2) - _SHIFT) / _SCALE  # noqa: E731
        fp, ft = self._taps(to_nchw(pred)), self._taps(to_nchw(target))
        total = torch.zeros(pred.shape[0])
        for a, b, w in zip(fp, ft, self.heads):
            total = total + ((a - b).square() * w).sum(1).mean(dim=(1, 2))  # (N,)
        return total
