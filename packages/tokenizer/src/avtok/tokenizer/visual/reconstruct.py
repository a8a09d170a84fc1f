"""Adapter to ``avtok.eval``'s ``Reconstructor`` protocol: clip in, reconstructed clip out.

The video goes through the visual tokenizer (encode → decode); the audio is passed through unchanged
(the visual tokenizer has no audio path). ``last_indices`` holds the FSQ indices of the last clip
(``None`` for continuous latents), which the evaluation driver feeds to codebook statistics.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avtok.media_io import AVClip
from avtok.tokenizer.visual.config import TilingConfig
from avtok.tokenizer.visual.model import VisualTokenizer, center_crop_to_patch

__all__ = ["VisualReconstructor", "crop_clip"]


def crop_clip(clip: AVClip, model: VisualTokenizer) -> AVClip:
    """The part of ``clip`` a cropping model (``crop_to_patch``, e.g. converted AToken) reconstructs."""
    if not model.config.crop_to_patch:
        return clip
    video = center_crop_to_patch(clip.video, model.config.patch)  # uint8 slicing, no copy
    return AVClip(video=video, audio=clip.frames(0, video.shape[0]).audio, fps=clip.fps,
                  sample_rate=clip.sample_rate, start=clip.start, source=clip.source)


class VisualReconstructor:
    """``VisualReconstructor(model).reconstruct(clip) -> AVClip`` (same size, fps and audio).

    A cropping model (``crop_to_patch``) reconstructs ``crop_clip(clip, model)``; pass that clip as the
    reference. ``discrete``: decode from the FSQ indices alone (what a token consumer would hold).
    """

    def __init__(self, model: VisualTokenizer, *, name: str = "atoken-visual",
                 tiling: TilingConfig | None | str = "config", discrete: bool = False) -> None:
        if discrete and not model.config.use_fsq:
            raise ValueError("discrete=True needs an FSQ tokenizer (use_fsq, e.g. a converted So/D); "
                             "drop --discrete for continuous latents")
        self.model = model
        self.name = name
        self.tiling = tiling
        self.discrete = discrete
        self.last_indices: Tensor | None = None

    @torch.no_grad()
    def reconstruct(self, clip: AVClip) -> AVClip:
        tokens = self.model.encode(clip.video_float(), tiling=self.tiling)  # moved to the model's device
        self.last_indices = None if tokens.indices is None else tokens.indices.cpu()
        if self.discrete:
            tokens.latents = None  # the decoder rebuilds the FSQ codes from the indices
        (video,) = self.model.decode(tokens, tiling=self.tiling)  # (T, H, W, 3)
        return AVClip.from_float(video=video.cpu(), audio=clip.audio, fps=clip.fps,
                                 sample_rate=clip.sample_rate, start=clip.start, source=clip.source)
