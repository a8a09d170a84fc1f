"""Clips ↔ AVTok tokens ↔ AR generator: read tokenizer-sized windows, encode them to unified indices,
generate, decode to playable clips (``decode_clips``: video + HiFi-GAN audio).

A saved :class:`ARPipeline` is a directory: the AR model via ``avtok.tokenizer.pretrained.save_pretrained``
and the AV tokenizer in ``tokenizer/`` (also ``save_pretrained``), so sampling needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from avtok.generator.ar.config import ARConfig
from avtok.generator.ar.model import ARTransformer
from avtok.generator.ar.sampling import ARSamplerConfig, generate_tokens
from avtok.generator.conditioning import resolve_source
from avtok.media_io import AVClip, WindowConfig
from avtok.tokenizer.av.clip import decode_clips, encode_clips, read_window
from avtok.tokenizer.av.config import MEL
from avtok.tokenizer.av.model import AVTokenizer, AVTokenizerOutput
from avtok.train.pretrained import from_pretrained, save_pretrained

__all__ = [
    "ARPipeline",
    "check_tokenizer",
    "read_windows",
    "window_config",
    "encode_windows",
    "decode_indices",
    "resolve_source",
]

TOKENIZER_DIR = "tokenizer"


def read_windows(tokenizer: AVTokenizer, source: str | Path, *, starts: Sequence[float]) -> list[AVClip]:
    """The windows of ``source`` at the given start times (s), at the tokenizer's fps / size / span (for
    conditioning clips; training windows come from :func:`avtok.generator.training_data.training_windows`
    with :func:`window_config`)."""
    path = resolve_source(source)
    return [read_window(tokenizer, path, start=s) for s in starts]


def window_config(tokenizer: AVTokenizer, **overrides) -> WindowConfig:
    """The tokenizer's windows on the data path: its fps and frame size (centre crop), 22.05 kHz mono (the
    rate its mel is computed at); ``overrides`` (hold-out, …) replace fields."""
    c = tokenizer.config
    return WindowConfig(**{"window_frames": c.frames, "fps": c.fps, "size": (c.height, c.width),
                           "resize_mode": "crop", "sample_rate": MEL.sample_rate, "channels": 1, **overrides})


@torch.no_grad()
def encode_windows(tokenizer: AVTokenizer, clips: Sequence[AVClip], *, batch_size: int = 16) -> Tensor:
    """Unified indices ``(N, Nv + Na)`` int64, video then audio."""
    tokenizer.eval()
    parts = [
        encode_clips(tokenizer, list(clips[i : i + batch_size])).indices
        for i in range(0, len(clips), batch_size)
    ]
    return torch.cat(parts).long().cpu()


@torch.no_grad()
def decode_indices(
    tokenizer: AVTokenizer, indices: Tensor, *, sample_rate: int = 22050, channels: int = 1
) -> list[AVClip]:
    """Indices ``(B, Nv + Na)`` → sounding clips (video + HiFi-GAN audio)."""
    c = tokenizer.config
    tokens = AVTokenizerOutput(
        indices=indices.to(tokenizer.to_latent.weight.device),
        modalities=("video", "audio"),
        counts=(c.video_tokens, c.audio_tokens),
    )
    return decode_clips(tokenizer, tokens, sample_rate=sample_rate, channels=channels)


def check_tokenizer(cfg: ARConfig, tokenizer: AVTokenizer) -> None:
    t = tokenizer.config
    mine = (cfg.codebook_size, cfg.video_tokens, cfg.audio_tokens)
    theirs = (t.codebook_size, t.video_tokens, t.audio_tokens)
    if mine != theirs:
        raise ValueError(
            f"AR model ({cfg.name}) expects codebook/video/audio tokens {mine} but the AV "
            f"tokenizer gives {theirs}; build the AR config with "
            f"build_ar_config(..., codebook_size={t.codebook_size}, "
            f"video_tokens={t.video_tokens}, audio_tokens={t.audio_tokens})"
        )


class ARPipeline:
    """An AR generator + the AV tokenizer whose tokens it models."""

    def __init__(self, model: ARTransformer, tokenizer: AVTokenizer) -> None:
        check_tokenizer(model.config, tokenizer)
        self.model, self.tokenizer = model.eval(), tokenizer.eval()

    def generate(
        self,
        *,
        task: str,
        labels: list[int] | None = None,
        clips: Sequence[AVClip] | None = None,
        seeds: list[int] | None = None,
        cfg: ARSamplerConfig | None = None,
    ) -> list[AVClip]:
        """One clip per label (joint) or per input clip (a2v: its audio given; v2a: its video given)."""
        given: dict[str, Tensor] = {}
        if task in ("a2v", "v2a"):
            if not clips:
                raise ValueError(f"task {task} needs input clips (--input clip.mp4)")
            idx = encode_windows(self.tokenizer, clips)
            nv = self.model.config.video_tokens
            given = {"audio": idx[:, nv:]} if task == "a2v" else {"video": idx[:, :nv]}
        out = generate_tokens(self.model, task=task, labels=labels, cfg=cfg, seeds=seeds, **given)
        return decode_indices(self.tokenizer, out.indices)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        save_pretrained(self.model, directory)
        save_pretrained(self.tokenizer, directory / TOKENIZER_DIR)
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, *, tokenizer: AVTokenizer | None = None, device: str = "cpu"
    ) -> ARPipeline:
        directory = Path(directory)
        model = from_pretrained(directory, device=device)
        if not isinstance(model, ARTransformer):
            raise ValueError(
                f"{directory}: holds a {type(model).__name__}, not an AR generator "
                "(write one with `avtok-generator train-ar`)"
            )
        if tokenizer is None:
            if not (directory / TOKENIZER_DIR / "config.json").exists():
                raise ValueError(f"{directory}: no {TOKENIZER_DIR}/ inside; pass --tokenizer DIR|PRESET")
            tokenizer = from_pretrained(directory / TOKENIZER_DIR, device=device)
        return cls(model, tokenizer)
