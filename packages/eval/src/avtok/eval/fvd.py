"""FVD: Fréchet distance on I3D features. Needs I3D weights at a local path (none ship on PyPI).

Frame-level FID (``avtok.eval.inception.frame_fid``) is a different metric and is never reported
under this name. Supported file: a TorchScript I3D such as StyleGAN-V's ``i3d_torchscript.pt`` (the
network of the original FVD), called as ``net(x, rescale=False, resize=False, return_features=True)``
on ``(N, 3, T, 224, 224)`` in ``[-1, 1]``; or any TorchScript module ``(N, 3, T, 224, 224) -> (N, D)``
with ``call_style="plain"``.

A TorchScript file is executable code: loading it runs the program stored in the file (the I3D's
``forward`` is TorchScript from whoever wrote the file), so pass only files from a source you trust.
avtok has no I3D architecture of its own into which a plain state dict / safetensors file could be
loaded; until it does, TorchScript is the only supported I3D format. The file must be a TorchScript
archive (a zip with a ``code/`` folder); a state dict or any other file is refused before loading.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from avtok.eval.frechet import FrechetStats, frechet_distance
from avtok.eval.validation import check_finite, check_min_ndim

__all__ = ["I3DFeatures", "fvd"]

CallStyle = Literal["stylegan-v", "plain"]


def _check_torchscript(path: Path) -> None:
    """Refuse files that are not TorchScript archives (a state dict, a pickle, anything else) before loading."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a TorchScript archive (not a zip file); pass --i3d a TorchScript I3D "
                         "such as StyleGAN-V's i3d_torchscript.pt")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if not any("/code/" in n for n in names):
        raise ValueError(f"{path}: a torch.save archive without TorchScript code (a state dict?); avtok has no "
                         "I3D architecture to load weights into: pass --i3d a TorchScript I3D (torch.jit.save)")


class I3DFeatures:
    """Videos (T, H, W, 3) in [-1, 1] → I3D features (1, D); weights from ``weights_path`` only."""

    def __init__(self, weights_path: str | Path | None, *, call_style: CallStyle = "stylegan-v",
                 device: str | torch.device = "cpu", num_frames: int = 16) -> None:
        if weights_path is None or not Path(weights_path).is_file():
            raise FileNotFoundError(
                f"FVD needs I3D weights at a local path (got {weights_path!r}); no I3D ships on PyPI. "
                "Pass --i3d PATH to a TorchScript I3D (e.g. StyleGAN-V's i3d_torchscript.pt); "
                "frame FID is reported separately and is not FVD"
            )
        _check_torchscript(Path(weights_path))
        self.device = torch.device(device)
        with warnings.catch_warnings():  # torch 2.14 deprecates jit.load; I3D files are TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(weights_path), map_location=self.device).eval()
        self.call_style, self.num_frames = call_style, num_frames

    @torch.no_grad()
    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        check_min_ndim("video", video, 4, "(T, H, W, 3)")
        check_finite("video", video.float())
        if video.shape[0] < self.num_frames:
            raise ValueError(f"video: {video.shape[0]} frames, FVD uses clips of {self.num_frames}; pass longer clips")
        x = video[: self.num_frames].to(self.device, torch.float32).permute(0, 3, 1, 2)  # (T, 3, H, W)
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        x = x.clamp(-1, 1).permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, T, 224, 224)
        if self.call_style == "stylegan-v":
            feats = self.net(x, rescale=False, resize=False, return_features=True)
        else:
            feats = self.net(x)
        return feats.reshape(1, -1).float().cpu()  # (1, D)


def fvd(generated: Iterable[torch.Tensor], reference: Iterable[torch.Tensor], *, extractor: I3DFeatures) -> float:
    """Fréchet Video Distance between two sets of videos (T, H, W, 3) in [-1, 1]."""
    stats = []
    for name, videos in (("generated videos", generated), ("reference videos", reference)):
        acc: FrechetStats | None = None
        for v in videos:
            f = extractor(v)
            acc = acc or FrechetStats(f.shape[1], name=name)
            acc.update(f)
        if acc is None:
            raise ValueError(f"{name}: none given; FVD needs at least two videos per set")
        stats.append(acc.compute())
    return frechet_distance(stats[0], stats[1])
