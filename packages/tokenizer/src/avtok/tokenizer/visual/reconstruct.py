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
from avtok.tokenizer.visual.model import VisualTokenizer

__all__ = ["VisualReconstructor"]


class VisualReconstructor:
    """``VisualReconstructor(model).reconstruct(clip) -> AVClip`` (same size, fps and audio)."""

    def __init__(self, model: VisualTokenizer, *, name: str = "atoken-visual",
                 tiling: TilingConfig | None | str = "config") -> None:
        self.model = model
        self.name = name
        self.tiling = tiling
        self.last_indices: Tensor | None = None

    @torch.no_grad()
    def reconstruct(self, clip: AVClip) -> AVClip:
        tokens = self.model.encode(clip.video_float(), tiling=self.tiling)  # moved to the model's device
        self.last_indices = None if tokens.indices is None else tokens.indices.cpu()
        (video,) = self.model.decode(tokens, tiling=self.tiling)  # (T, H, W, 3)
        return AVClip.from_float(video=video.cpu(), audio=clip.audio, fps=clip.fps,
                                 sample_rate=clip.sample_rate, start=clip.start, source=clip.source)
