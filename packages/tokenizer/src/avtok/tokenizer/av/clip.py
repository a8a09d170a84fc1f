"""AVClip ↔ AV tokenizer: clips in, tokens, clips out (media-io does all signal work).

In: ``AVClip`` → video in [-1, 1] + the clip's audio mixed to mono, resampled to 22.05 kHz, cut or
zero-padded to the model's window, ``log_mel`` (HiFi-GAN features) → the model's ``MelNormalizer``.
Out: decoded video → uint8 frames; decoded mel → denormalise → HiFi-GAN (``mel_to_wave``) → resampled
back to the requested rate, length and channel count → ``AVClip`` that ``write_clip`` saves as an mp4.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torchaudio.functional as AF
from torch import Tensor

from avtok.media_io import AVClip, log_mel, mel_to_wave, read_clip
from avtok.tokenizer.av.config import MEL
from avtok.tokenizer.av.model import AVReconstruction, AVTokenizer, AVTokenizerOutput

__all__ = ["read_window", "clip_inputs", "encode_clips", "decode_clips", "reconstruct_clip", "clip_wave",
           "AVClipReconstructor"]

Vocoder = Literal["auto", "hifigan", "griffinlim"]


def read_window(model: AVTokenizer, source: str | Path, *, start: float = 0.0, windows: int = 1) -> AVClip:
    """``windows`` consecutive model windows of ``source`` from ``start`` s, at the model's fps and frame
    size (centre crop), audio as stored; a file without audio gets silence."""
    c = model.config
    return read_clip(source, start=start, duration=windows * c.seconds, fps=c.fps, size=(c.height, c.width),
                     resize_mode="crop", allow_silent=True)


def clip_wave(clip: AVClip, num_samples: int) -> Tensor:
    """The clip's audio as mono 22.05 kHz, cut or zero-padded to ``num_samples``: ``(num_samples,)``."""
    mono = clip.audio.mean(dim=0)  # (N,)
    if clip.sample_rate != MEL.sample_rate:
        mono = AF.resample(mono, clip.sample_rate, MEL.sample_rate)
    return _fit_length(mono, num_samples)


def _fit_length(wave: Tensor, n: int) -> Tensor:
    """Cut or zero-pad the last axis to ``n`` samples."""
    if wave.shape[-1] >= n:
        return wave[..., :n]
    return torch.nn.functional.pad(wave, (0, n - wave.shape[-1]))


def clip_inputs(model: AVTokenizer, clips: AVClip | Sequence[AVClip]) -> tuple[Tensor, Tensor]:
    """Clips → ``video (B, T, H, W, 3)`` in [-1, 1] and normalised log-mel ``(B, 80, mel_frames)``."""
    c = model.config
    items = [clips] if isinstance(clips, AVClip) else list(clips)
    if not items:
        raise ValueError("clips is empty; pass at least one AVClip")
    for i, clip in enumerate(items):
        if (clip.num_frames, clip.height, clip.width) != (c.frames, c.height, c.width):
            raise ValueError(f"clips[{i}] ({clip.source or 'AVClip'}): {clip.num_frames} frames of "
                             f"{clip.height}×{clip.width}, but the model takes {c.frames} frames of "
                             f"{c.height}×{c.width}; fix: read_clip(path, start=..., "
                             f"duration={c.seconds:.4g}, "
                             f"fps={c.fps:.6g}, size=({c.height}, {c.width}), resize_mode='crop')")
    video = torch.stack([clip.video_float() for clip in items])  # (B, T, H, W, 3)
    waves = torch.stack([clip_wave(clip, c.num_samples) for clip in items])  # (B, N)
    mel = model.normalize_mel(log_mel(waves, MEL))  # (B, 80, mel_frames)
    ref = model.to_latent.weight
    return video.to(ref.device), mel.to(ref.device)


def encode_clips(model: AVTokenizer, clips: AVClip | Sequence[AVClip]) -> AVTokenizerOutput:
    """Clips → unified tokens (both streams)."""
    video, mel = clip_inputs(model, clips)
    return model.encode(video, mel)


def decode_clips(
    model: AVTokenizer,
    tokens: AVTokenizerOutput | AVReconstruction,
    *,
    fps: float | None = None,
    sample_rate: int = MEL.sample_rate,
    channels: int = 1,
    num_samples: int | None = None,
    vocoder: Vocoder = "hifigan",
) -> list[AVClip]:
    """Tokens (or an already decoded ``AVReconstruction``) → sounding ``AVClip``s.

    ``fps`` defaults to the model's; audio is vocoded at 22.05 kHz then resampled to ``sample_rate``,
    given ``channels`` (mono copied) and cut/padded to ``num_samples`` (default: the frames' span).
    """
    rec = model.decode(tokens) if isinstance(tokens, AVTokenizerOutput) else tokens
    if rec.video is None or rec.mel is None:
        raise ValueError("decode_clips needs both streams (an AVClip holds video and audio); for "
                         "video-only or audio-only tokens use model.decode(tokens)")
    fps = model.config.fps if fps is None else float(fps)
    with torch.no_grad():
        wave = mel_to_wave(model.denormalize_mel(rec.mel.float()), MEL, method=vocoder)  # (B, F·hop)
    wave = wave.float().cpu()
    if sample_rate != MEL.sample_rate:
        wave = AF.resample(wave, MEL.sample_rate, sample_rate)
    n = round(rec.video.shape[1] / fps * sample_rate) if num_samples is None else num_samples
    wave = _fit_length(wave, n).clamp(-1.0, 1.0)  # (B, n)
    return [AVClip.from_float(video=v.cpu(), audio=w[None].expand(channels, -1).contiguous(), fps=fps,
                              sample_rate=int(sample_rate)) for v, w in zip(rec.video, wave, strict=True)]


def reconstruct_clip(model: AVTokenizer, clip: AVClip, *, vocoder: Vocoder = "hifigan") -> AVClip:
    """Encode and decode one clip; the result has the clip's fps, sample rate, channels and length."""
    return AVClipReconstructor(model, vocoder=vocoder).reconstruct(clip)


class AVClipReconstructor:
    """``avtok.eval.Reconstructor`` over the AV tokenizer: a clip in, its reconstruction out.

    A clip of exactly one model window is encoded and decoded at once. A longer clip (at the model's fps
    and frame size) goes through consecutive windows; when its length is not a whole number of windows
    the last window is aligned to the clip's end and only its frames (and their audio span) not yet
    covered are kept, so every frame is reconstructed once and the output has the clip's length. A clip
    shorter than one window is an error. ``last_indices`` holds the token indices of the last clip,
    ``(1, windows · N)`` (for codebook statistics).
    """

    def __init__(self, model: AVTokenizer, *, name: str = "avtok-av", vocoder: Vocoder = "hifigan") -> None:
        self.model, self.name, self.vocoder = model, name, vocoder
        self.last_indices: Tensor | None = None

    @torch.no_grad()
    def _window(self, clip: AVClip) -> tuple[AVClip, Tensor | None]:
        tokens = encode_clips(self.model, clip)
        (out,) = decode_clips(self.model, tokens, fps=clip.fps, sample_rate=clip.sample_rate,
                              channels=clip.channels, num_samples=clip.audio.shape[1], vocoder=self.vocoder)
        return out, tokens.indices

    def reconstruct(self, clip: AVClip) -> AVClip:
        c = self.model.config
        n, f = clip.num_frames, c.frames
        if n < f:
            raise ValueError(f"{clip.source or 'AVClip'}: {n} frames, shorter than the model's {f}-frame "
                             f"window ({c.seconds:.4g} s at {c.fps:.6g} fps); fix: pass at least one window")
        starts = list(range(0, n - f + 1, f))
        if starts[-1] + f < n:
            starts.append(n - f)  # the tail: a last window aligned to the clip's end
        parts, indices, done = [], [], 0
        for s in starts:
            out, idx = self._window(clip.frames(s, s + f))
            parts.append(out.frames(done - s, f) if done > s else out)  # done > s only for the tail
            indices.append(idx)
            done = s + f
        if len(parts) > 1:  # (the tail's audio cut rounds within its window: fit the clip's length)
            audio = _fit_length(torch.cat([p.audio for p in parts], dim=1), clip.audio.shape[1])
            out = AVClip(video=torch.cat([p.video for p in parts]), audio=audio, fps=clip.fps,
                         sample_rate=clip.sample_rate)
        else:
            out = parts[0]
        self.last_indices = None if indices[0] is None else torch.cat(indices, dim=1)
        out.start, out.source = clip.start, clip.source
        return out
