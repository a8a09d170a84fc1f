"""Ovi's three autoencoders together: media <-> the latents its twin DiT denoises.

- video: frames <-> normalised Wan2.2 latent ``(48, F, H / 16, W / 16)`` (:mod:`.video_vae`);
- audio: 16 kHz waveform -> log10-mel -> MMAudio VAE posterior mean ``(L, 20)`` with ``L = (N // 256) // 2``
  (:mod:`.mel`, :mod:`.audio_vae`); back through the VAE decoder and BigVGAN (:mod:`.vocoder`) to
  ``2 L · 256`` samples. Ovi applies no scale or shift between the audio VAE and the DiT.

:meth:`OviAutoencoders.decode` returns an :class:`avtok.media_io.AVClip` (uint8 frames at 24 fps, mono
16 kHz audio) that :func:`avtok.media_io.write_clip` writes as mp4, as Ovi's engine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from avtok.generator.ovi.audio_vae import AudioVAE, load_audio_vae
from avtok.generator.ovi.checkpoints import OVI_CHECKPOINT_FILES
from avtok.generator.ovi.mel import OVI_SAMPLE_RATE, ovi_log_mel
from avtok.generator.ovi.video_vae import WanVideoVAE, frames_to_uint8, load_wan_vae
from avtok.generator.ovi.vocoder import BigVGAN, load_bigvgan
from avtok.media_io import AVClip

__all__ = ["OVI_FPS", "OviAutoencoders"]

OVI_FPS = 24.0


def _video_to_model(frames: Tensor) -> Tensor:
    """(T, H, W, 3) uint8 or (3, T, H, W) float in [-1, 1] -> (1, 3, T, H, W) float32 in [-1, 1]."""
    if frames.dtype == torch.uint8 and frames.ndim == 4 and frames.shape[-1] == 3:
        return (frames.float() / 255 * 2 - 1).permute(3, 0, 1, 2).unsqueeze(0)
    if frames.is_floating_point() and frames.ndim == 4 and frames.shape[0] == 3:
        return frames.float().unsqueeze(0)
    raise ValueError(
        f"frames of shape {tuple(frames.shape)} / {frames.dtype}: pass (T, H, W, 3) uint8 or (3, T, H, W) "
        "float in [-1, 1]"
    )


@dataclass(kw_only=True)
class OviAutoencoders:
    """Video VAE, audio VAE and vocoder of Ovi; every method takes and returns one item (no batch dim)."""

    video: WanVideoVAE
    audio: AudioVAE
    vocoder: BigVGAN
    fps: float = OVI_FPS
    sample_rate: int = OVI_SAMPLE_RATE

    @classmethod
    def from_files(
        cls, *, video_vae: str | Path, audio_vae: str | Path, vocoder: str | Path
    ) -> OviAutoencoders:
        """From ``Wan2.2_VAE.pth``, ``v1-16.pth`` and ``best_netG.pt`` (or safetensors exports)."""
        return cls(
            video=load_wan_vae(video_vae), audio=load_audio_vae(audio_vae), vocoder=load_bigvgan(vocoder)
        )

    @classmethod
    def from_checkpoint_dir(cls, ckpt_dir: str | Path) -> OviAutoencoders:
        """From Ovi's ``ckpt_dir`` layout (:data:`~avtok.generator.ovi.checkpoints.OVI_CHECKPOINT_FILES`)."""
        root = Path(ckpt_dir)
        return cls.from_files(**{k: root / v for k, v in OVI_CHECKPOINT_FILES.items()})

    def to(self, device: str | torch.device) -> OviAutoencoders:
        for m in (self.video, self.audio, self.vocoder):
            m.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.audio.data_mean.device

    @torch.no_grad()
    def encode_video(self, frames: Tensor) -> Tensor:
        """Frames (T, H, W, 3) uint8 or (3, T, H, W) in [-1, 1] -> normalised latent (48, 1 + (T - 1) // 4, H / 16, W / 16)."""
        return self.video.encode(_video_to_model(frames).to(self.device))[0]

    @torch.no_grad()
    def decode_video(self, latent: Tensor) -> Tensor:
        """Normalised latent (48, F, h, w) -> frames (3, 1 + 4 (F - 1), 16 h, 16 w) clamped to [-1, 1]."""
        return self.video.decode(latent.unsqueeze(0).to(self.device))[0]

    @torch.no_grad()
    def encode_audio(self, wave: Tensor) -> Tensor:
        """16 kHz mono waveform (N,) or (1, N) -> DiT audio latent (L, 20), L = (N // 256) // 2."""
        mel = ovi_log_mel(wave.reshape(1, -1).to(self.device))  # (1, 80, F)
        return self.audio.encode(mel)[0].T

    @torch.no_grad()
    def decode_audio(self, latent: Tensor) -> Tensor:
        """DiT audio latent (L, 20) -> 16 kHz waveform (2 L · 256,) in [-1, 1]."""
        mel = self.audio.decode(latent.T.unsqueeze(0).to(self.device))  # (1, 80, 2L)
        return self.vocoder(mel)[0, 0]

    def decode(self, video_latent: Tensor, audio_latent: Tensor) -> AVClip:
        """Both latents -> an AVClip: uint8 frames (T, H, W, 3) at ``fps`` and mono audio (1, N) at 16 kHz."""
        frames = frames_to_uint8(self.decode_video(video_latent).float().cpu())
        wave = self.decode_audio(audio_latent).float().cpu().clamp(-1.0, 1.0)
        return AVClip(video=frames, fps=self.fps, audio=wave.unsqueeze(0), sample_rate=self.sample_rate)
