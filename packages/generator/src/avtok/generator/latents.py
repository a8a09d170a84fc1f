"""Latent codecs: what turns clips into (video, audio) latents for the twin DiT and back.

:class:`PooledAVLatents` is a simple, documented, parameter-free stand-in used for the CPU evidence and
tests while the AVTok-style AV tokenizer is being written: video latents are frames average-pooled by
``pool`` (``(T, H/pool, W/pool, 3)`` in [-1, 1]); audio latents are normalised 80-band log-mel frames
(``avtok.media_io.log_mel``, the HiFi-GAN vocoder's config) average-pooled along time by ``mel_pool``,
decoded by repeating frames and running media-io's HiFi-GAN. Any codec with the :class:`LatentCodec`
protocol (e.g. a tokenizer wrapper) plugs into training and the pipeline the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from avtok.generator.config import LatentSpec
from avtok.media_io import AVClip, MelConfig, log_mel, mel_to_wave, read_clip

__all__ = ["LatentCodec", "PooledAVLatents", "PooledLatentConfig"]

# log-mel statistics used to normalise to ~unit scale (measured on the concert sample, rounded)
_MEL_MEAN, _MEL_STD = -5.0, 2.5


@runtime_checkable
class LatentCodec(Protocol):
    spec: LatentSpec

    def encode(self, clip: AVClip) -> tuple[Tensor, Tensor]: ...  # (T', H', W', Cv), (La, Ca)

    def decode(self, video: Tensor, audio: Tensor) -> AVClip: ...


@dataclass(kw_only=True)
class PooledLatentConfig:
    seconds: float = 2.0
    fps: float = 8.0
    size: int = 32  # frames are read at size × size
    pool: int = 4
    mel_pool: int = 4


class PooledAVLatents:
    """Parameter-free AV latents (pooled frames + pooled log-mel); see the module docstring."""

    def __init__(self, cfg: PooledLatentConfig | None = None) -> None:
        self.cfg = cfg = cfg or PooledLatentConfig()
        self.mel = MelConfig()
        if cfg.size % cfg.pool:
            raise ValueError(f"PooledLatentConfig: size={cfg.size} must be divisible by pool={cfg.pool}")
        frames = round(cfg.seconds * cfg.fps)
        samples = round(frames / cfg.fps * self.mel.sample_rate)
        tokens = samples // self.mel.hop_length // cfg.mel_pool
        self.spec = LatentSpec(
            video_frames=frames,
            video_height=cfg.size // cfg.pool,
            video_width=cfg.size // cfg.pool,
            video_channels=3,
            video_latent_rate=cfg.fps,
            audio_tokens=tokens,
            audio_channels=self.mel.n_mels,
            audio_latent_rate=tokens / (frames / cfg.fps),
        )

    def read(self, path: str, *, start: float = 0.0) -> AVClip:
        c = self.cfg
        return read_clip(
            path,
            start=start,
            duration=c.seconds,
            fps=c.fps,
            size=c.size,
            sample_rate=self.mel.sample_rate,
            channels=1,
        )

    def encode(self, clip: AVClip) -> tuple[Tensor, Tensor]:
        s = self.spec
        frames = clip.video[: s.video_frames].permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (T, 3, H, W)
        if frames.shape[0] != s.video_frames or frames.shape[-1] != self.cfg.size:
            raise ValueError(
                f"PooledAVLatents.encode: clip has {tuple(clip.video.shape)} frames; read it with "
                f"PooledAVLatents.read (fps {self.cfg.fps}, size {self.cfg.size}, "
                f"{self.cfg.seconds} s)"
            )
        video = F.avg_pool2d(frames, self.cfg.pool).permute(0, 2, 3, 1)  # (T', H', W', 3)
        mel = (log_mel(clip.audio.mean(0), self.mel) - _MEL_MEAN) / _MEL_STD  # (80, N)
        n = s.audio_tokens * self.cfg.mel_pool
        audio = F.avg_pool1d(mel[None, :, :n], self.cfg.mel_pool)[0].T  # (La, 80)
        return video.contiguous(), audio.contiguous()

    def decode(self, video: Tensor, audio: Tensor) -> AVClip:
        frames = F.interpolate(
            video.permute(0, 3, 1, 2).float(),
            scale_factor=self.cfg.pool,
            mode="bilinear",
            align_corners=False,
        )  # (T, 3, H, W)
        frames = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        mel = audio.T.float().repeat_interleave(self.cfg.mel_pool, dim=-1) * _MEL_STD + _MEL_MEAN  # (80, N)
        wave = mel_to_wave(mel, self.mel).reshape(1, -1).clamp(-1, 1)  # (1, samples)
        return AVClip(
            video=frames.contiguous(), fps=self.cfg.fps, audio=wave.float(), sample_rate=self.mel.sample_rate
        )
