"""Reference reconstructions that frame every reported number: identity (upper bound) and trivial
lower bounds (mean frame + silence, repeat-first-frame + silence). They are ``Reconstructor``s, so the
driver scores them exactly like a model.

The held-frame baselines return broadcast views (``expand``) of one frame and the identity returns
the input's tensors: no baseline allocates another copy of the clip (evaluation of long, large clips
keeps its memory bound).
"""

from __future__ import annotations

import torch

from avtok.eval.image_metrics import BLOCK_VALUES
from avtok.media_io import AVClip

__all__ = ["IdentityBaseline", "MeanFrameSilenceBaseline", "RepeatFirstFrameBaseline", "default_baselines"]


def _with(clip: AVClip, *, video: torch.Tensor, audio: torch.Tensor) -> AVClip:
    return AVClip(video=video, audio=audio, fps=clip.fps, sample_rate=clip.sample_rate,
                  start=clip.start, source=clip.source)


def _mean_frame(video: torch.Tensor) -> torch.Tensor:
    """Mean over time of (T, H, W, 3) uint8 frames, summed in float32 blocks. Returns (1, H, W, 3) float32."""
    total = torch.zeros((1, *video.shape[1:]), dtype=torch.float64)
    chunk = max(1, BLOCK_VALUES // video[0].numel())
    for t0 in range(0, video.shape[0], chunk):
        total += video[t0 : t0 + chunk].float().sum(0, keepdim=True)
    return (total / video.shape[0]).float()


class IdentityBaseline:
    """Returns the input: the best any reconstruction can score (PSNR = inf, SSIM = 1, SI-SDR max)."""

    name = "baseline:identity"

    def reconstruct(self, clip: AVClip) -> AVClip:
        return _with(clip, video=clip.video, audio=clip.audio)  # same tensors: metrics only read them


class MeanFrameSilenceBaseline:
    """Every frame is the clip's mean frame; audio is silence: knows the clip's colours, nothing more."""

    name = "baseline:mean_frame+silence"

    def reconstruct(self, clip: AVClip) -> AVClip:
        mean = _mean_frame(clip.video).round().to(torch.uint8)  # (1, H, W, 3)
        return _with(clip, video=mean.expand_as(clip.video), audio=torch.zeros_like(clip.audio))


class RepeatFirstFrameBaseline:
    """First frame held for the whole clip, silent audio: perfect appearance, no motion, no sound."""

    name = "baseline:repeat_first_frame+silence"

    def reconstruct(self, clip: AVClip) -> AVClip:
        first = clip.video[:1]  # (1, H, W, 3)
        return _with(clip, video=first.expand_as(clip.video), audio=torch.zeros_like(clip.audio))


def default_baselines() -> list:
    """The three baselines every reconstruction report carries."""
    return [IdentityBaseline(), MeanFrameSilenceBaseline(), RepeatFirstFrameBaseline()]
