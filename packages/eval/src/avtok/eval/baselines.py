"""Reference reconstructions that frame every reported number: identity (upper bound) and trivial
lower bounds (mean frame + silence, repeat-first-frame + silence). They are ``Reconstructor``s, so the
driver scores them exactly like a model.
"""

from __future__ import annotations

import torch

from avtok.media_io import AVClip

__all__ = ["IdentityBaseline", "MeanFrameSilenceBaseline", "RepeatFirstFrameBaseline", "default_baselines"]


def _with(clip: AVClip, *, video: torch.Tensor, audio: torch.Tensor) -> AVClip:
    return AVClip(video=video, audio=audio, fps=clip.fps, sample_rate=clip.sample_rate,
                  start=clip.start, source=clip.source)


class IdentityBaseline:
    """Returns the input: the best any reconstruction can score (PSNR = inf, SSIM = 1, SI-SDR max)."""

    name = "baseline:identity"

    def reconstruct(self, clip: AVClip) -> AVClip:
        return _with(clip, video=clip.video.clone(), audio=clip.audio.clone())


class MeanFrameSilenceBaseline:
    """Every frame is the clip's mean frame; audio is silence: knows the clip's colours, nothing more."""

    name = "baseline:mean_frame+silence"

    def reconstruct(self, clip: AVClip) -> AVClip:
        mean = clip.video.float().mean(0, keepdim=True).round().to(torch.uint8)  # (1, H, W, 3)
        return _with(clip, video=mean.expand_as(clip.video).clone(), audio=torch.zeros_like(clip.audio))


class RepeatFirstFrameBaseline:
    """First frame held for the whole clip, silent audio: perfect appearance, no motion, no sound."""

    name = "baseline:repeat_first_frame+silence"

    def reconstruct(self, clip: AVClip) -> AVClip:
        first = clip.video[:1]  # (1, H, W, 3)
        return _with(clip, video=first.expand_as(clip.video).clone(), audio=torch.zeros_like(clip.audio))


def default_baselines() -> list:
    """The three baselines every reconstruction report carries."""
    return [IdentityBaseline(), MeanFrameSilenceBaseline(), RepeatFirstFrameBaseline()]
