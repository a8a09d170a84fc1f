"""Ovi's own latents as a :class:`~avtok.generator.ovi.latents.LatentCodec`: the Wan2.2 video VAE and the
MMAudio audio VAE + BigVGAN (:class:`~avtok.generator.ovi.autoencoders.OviAutoencoders`) behind the
pipeline, so a converted Ovi model samples and fine-tunes on the latents it was trained on.

A window is ``frames`` frames at 24 fps (Ovi: 121, 5.04 s) of ``size`` × ``size`` pixels (a multiple of
32; Ovi's 720x720 model works at ~704) and the same span of 16 kHz mono audio: video latent
``(1 + (frames − 1) / 4, size / 16, size / 16, 48)``, audio latent ``((N // 256) // 2, 20)`` (157 tokens for
5 s) — the twin DiT's channels-last layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from avtok.generator.ovi.autoencoders import OVI_FPS, OviAutoencoders
from avtok.generator.ovi.config import LatentSpec
from avtok.generator.ovi.mel import OVI_SAMPLE_RATE
from avtok.media_io import AVClip, WindowConfig, read_clip

__all__ = ["OviLatentConfig", "OviLatents"]


@dataclass(kw_only=True)
class OviLatentConfig:
    checkpoint_dir: str  # Ovi's ckpt_dir (Wan2.2-TI2V-5B/Wan2.2_VAE.pth, MMAudio/ext_weights/...)
    frames: int = 121
    size: int = 704

    @property
    def seconds(self) -> float:
        return self.frames / OVI_FPS

    def __post_init__(self) -> None:
        if (self.frames - 1) % 4 or self.size % 32:
            raise ValueError(f"OviLatentConfig: frames={self.frames} must be 1 + 4k and size={self.size} a "
                             "multiple of 32 (Wan2.2 VAE strides x DiT patch)")


class OviLatents:
    """Clips <-> Ovi latents (see the module docstring); ``autoencoders`` defaults to the checkpoint dir."""

    def __init__(self, cfg: OviLatentConfig, autoencoders: OviAutoencoders | None = None) -> None:
        self.cfg = cfg
        self.ae = autoencoders or OviAutoencoders.from_checkpoint_dir(Path(cfg.checkpoint_dir))
        seconds = cfg.frames / OVI_FPS
        samples = round(seconds * OVI_SAMPLE_RATE)
        t_lat = 1 + (cfg.frames - 1) // 4
        tokens = (samples // 256) // 2
        self.samples = samples
        self.spec = LatentSpec(video_frames=t_lat, video_height=cfg.size // 16, video_width=cfg.size // 16,
                               video_channels=48, video_latent_rate=t_lat / seconds, audio_tokens=tokens,
                               audio_channels=20, audio_latent_rate=tokens / seconds)

    def read(self, path: str, *, start: float = 0.0) -> AVClip:
        return read_clip(path, start=start, duration=self.cfg.frames / OVI_FPS, fps=OVI_FPS,
                         size=self.cfg.size, resize_mode="crop", sample_rate=OVI_SAMPLE_RATE, channels=1)

    def window_config(self, **overrides) -> WindowConfig:
        """The training windows of the data path in ``read``'s format (``overrides``: hold-out, …)."""
        return WindowConfig(**{"window_frames": self.cfg.frames, "fps": OVI_FPS, "size": self.cfg.size,
                               "resize_mode": "crop", "sample_rate": OVI_SAMPLE_RATE, "channels": 1,
                               **overrides})

    def encode(self, clip: AVClip) -> tuple[Tensor, Tensor]:
        """-> video (T', H', W', 48), audio (La, 20)."""
        if clip.num_frames < self.cfg.frames or clip.video.shape[1:3] != (self.cfg.size, self.cfg.size):
            raise ValueError(f"OviLatents.encode: clip frames {tuple(clip.video.shape)}; read it with "
                             f"OviLatents.read ({self.cfg.frames} frames at 24 fps, {self.cfg.size} px)")
        if clip.sample_rate != OVI_SAMPLE_RATE:
            raise ValueError(f"OviLatents.encode: audio at {clip.sample_rate} Hz; read the clip at 16 kHz")
        video = self.ae.encode_video(clip.video[: self.cfg.frames]).permute(1, 2, 3, 0)  # (T', H', W', 48)
        wave = clip.audio.mean(0)[: self.samples]
        wave = torch.nn.functional.pad(wave, (0, self.samples - wave.shape[0]))
        return video.float().cpu(), self.ae.encode_audio(wave).float().cpu()

    def decode(self, video: Tensor, audio: Tensor) -> AVClip:
        return self.ae.decode(video.permute(3, 0, 1, 2), audio)
