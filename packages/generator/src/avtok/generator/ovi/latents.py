"""Latent codecs: what turns clips into (video, audio) latents for the twin DiT and back.

:class:`TokenizerLatents` (the default for real use) takes both from one trained avtok visual tokenizer
(AToken-style, KL latents), as Ovi takes them from the Wan video VAE and the MMAudio audio VAE:

- video: frames ``(T, H, W, 3)`` → the tokenizer's latent grid ``(T/4, H/16, W/16, C)``;
- audio: the 80-band log-mel drawn as a grey image (``avtok.tokenizer.mel_image``) → its latent grid
  ``(80/16, ceil(F/16))`` → one token per column ``(ceil(F/16), 5·C)``: a time axis at
  22050 / 256 / 16 ≈ 5.38 tokens/s, which the audio tower's RoPE aligns with the video latent frames.

The tokenizer must have learnt mel images (``avtok-tokenizer train --preset tiny-visual --mel-images``).
The AVTok-style AV tokenizer is not used here: its 1D tokens have no time axis to align. Latents are
standardised per channel with statistics fitted on training clips (``fit``), as Wan's VAE latents are.

:class:`PooledAVLatents` is a parameter-free codec for tests and quick experiments: video latents are
frames average-pooled by ``pool`` (``(T, H/pool, W/pool, 3)`` in [-1, 1]); audio latents are normalised
80-band log-mel frames average-pooled along time by ``mel_pool``, decoded by repeating frames and running
media-io's HiFi-GAN. Any codec with the :class:`LatentCodec` protocol plugs into training and the
pipeline the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from avtok.generator.ovi.config import LatentSpec
from avtok.media_io import AVClip, MelConfig, WindowConfig, log_mel, mel_to_wave, read_clip
from avtok.tokenizer.mel_image import image_to_mel, mel_to_image
from avtok.tokenizer.types import TokenizerOutput
from avtok.tokenizer.visual.model import VisualTokenizer

__all__ = [
    "LatentCodec",
    "PooledAVLatents",
    "PooledLatentConfig",
    "TokenizerLatents",
    "TokenizerLatentConfig",
]

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

    def read(self, path: str, *, start: float = 0.0, allow_silent: bool = False) -> AVClip:
        c = self.cfg
        return read_clip(
            path,
            start=start,
            duration=c.seconds,
            fps=c.fps,
            size=c.size,
            sample_rate=self.mel.sample_rate,
            channels=1,
            allow_silent=allow_silent,
        )

    def window_config(self, **overrides) -> WindowConfig:
        """The training windows of the data path in ``read``'s format (``overrides``: hold-out, …)."""
        c = self.cfg
        return WindowConfig(**{"window_frames": self.spec.video_frames, "fps": c.fps, "size": c.size,
                               "resize_mode": "resize", "sample_rate": self.mel.sample_rate, "channels": 1,
                               **overrides})

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


@dataclass(kw_only=True)
class TokenizerLatentConfig:
    """Clip format of :class:`TokenizerLatents` plus its per-channel latent statistics (from ``fit``)."""

    seconds: float = 2.0
    fps: float = 8.0
    size: int = 64  # frames are read at size × size (centre crop)
    stats: dict[str, list[float]] = field(default_factory=dict)  # video/audio _mean/_std per channel


class TokenizerLatents:
    """(video, audio) latents of one trained avtok visual tokenizer; see the module docstring."""

    def __init__(self, tokenizer: VisualTokenizer, cfg: TokenizerLatentConfig | None = None) -> None:
        self.tokenizer = tokenizer.eval()
        self.cfg = cfg = cfg or TokenizerLatentConfig()
        self.mel = MelConfig()
        t_patch, p, _ = tokenizer.config.patch
        frames = round(cfg.seconds * cfg.fps)
        if frames % t_patch or cfg.size % p:
            raise ValueError(
                f"TokenizerLatentConfig: {cfg.seconds} s at {cfg.fps} fps = {frames} frames and size "
                f"{cfg.size} must be multiples of the tokenizer's patch {tokenizer.config.patch}"
            )
        self.frames = frames
        self.mel_frames = int(cfg.seconds * self.mel.sample_rate) // self.mel.hop_length
        dev = tokenizer.patch_embed.weight.device
        with torch.no_grad():  # templates: coordinates and layouts of one clip's video and mel image
            self._video = tokenizer.encode(torch.zeros(frames, cfg.size, cfg.size, 3, device=dev))
            self._audio = tokenizer.encode(torch.zeros(self.mel.n_mels, self.mel_frames, 3, device=dev))
        gt, gh, gw = self._video.layouts[0].grid
        _, ah, aw = self._audio.layouts[0].grid  # mel image: height = mel bands, width = time
        c = tokenizer.config.latent_dim
        self._video_order = _grid_order(self._video.coords, gh, gw)
        self._audio_order = _grid_order(self._audio.coords, ah, aw)
        self._audio_grid = (ah, aw, c)
        self.spec = LatentSpec(
            video_frames=gt,
            video_height=gh,
            video_width=gw,
            video_channels=c,
            video_latent_rate=gt / cfg.seconds,
            audio_tokens=aw,
            audio_channels=ah * c,
            audio_latent_rate=self.mel.sample_rate / self.mel.hop_length / p,  # mel frames per column
        )

    def read(self, path: str, *, start: float = 0.0, allow_silent: bool = False) -> AVClip:
        c = self.cfg
        return read_clip(path, start=start, duration=c.seconds, fps=c.fps, size=c.size, resize_mode="crop",
                         sample_rate=self.mel.sample_rate, channels=1, allow_silent=allow_silent)

    def window_config(self, **overrides) -> WindowConfig:
        """The training windows of the data path in ``read``'s format (``overrides``: hold-out, …)."""
        c = self.cfg
        return WindowConfig(**{"window_frames": self.frames, "fps": c.fps, "size": c.size,
                               "resize_mode": "crop", "sample_rate": self.mel.sample_rate, "channels": 1,
                               **overrides})

    @torch.no_grad()
    def encode_raw(self, clip: AVClip) -> tuple[Tensor, Tensor]:
        """Unstandardised latents: video ``(T', H', W', C)``, audio ``(La, 5·C)``."""
        if clip.num_frames < self.frames or clip.video.shape[1:3] != (self.cfg.size, self.cfg.size):
            raise ValueError(
                f"TokenizerLatents.encode: clip has frames {tuple(clip.video.shape)}; read it with "
                f"TokenizerLatents.read ({self.cfg.seconds} s at {self.cfg.fps} fps, {self.cfg.size} px)"
            )
        if clip.sample_rate != self.mel.sample_rate:
            raise ValueError(f"TokenizerLatents.encode: audio at {clip.sample_rate} Hz; read the clip at "
                             f"{self.mel.sample_rate} Hz (TokenizerLatents.read)")
        dev = self.tokenizer.patch_embed.weight.device
        video = clip.video_float()[: self.frames].to(dev)
        mel = log_mel(clip.audio.mean(0), self.mel)[:, : self.mel_frames]
        if mel.shape[1] < self.mel_frames:
            raise ValueError(f"TokenizerLatents.encode: {clip.source} has {mel.shape[1]} mel frames, "
                             f"{self.mel_frames} needed; the clip's audio is too short")
        v = self.tokenizer.encode(video, sample=False).latents[self._video_order]  # (L, C) in grid order
        a = self.tokenizer.encode(mel_to_image(mel).to(dev), sample=False).latents[self._audio_order]
        s = self.spec
        v = v.reshape(s.video_frames, s.video_height, s.video_width, -1)
        ah, aw, c = self._audio_grid
        a = a.reshape(ah, aw, c).permute(1, 0, 2).reshape(aw, ah * c)  # one token per time column
        return v.float().cpu(), a.float().cpu()

    def fit(self, clips: list[AVClip]) -> TokenizerLatents:
        """Fit the per-channel mean / std of the latents of ``clips`` (training windows)."""
        if len(clips) < 2:
            raise ValueError("TokenizerLatents.fit: give at least 2 training clips")
        lat = [self.encode_raw(c) for c in clips]
        v = torch.stack([x[0] for x in lat]).flatten(0, -2)  # (N·T'·H'·W', C)
        a = torch.stack([x[1] for x in lat]).flatten(0, -2)  # (N·La, 5·C)
        self.cfg.stats = {
            "video_mean": v.mean(0).tolist(), "video_std": v.std(0).clamp_min(1e-4).tolist(),
            "audio_mean": a.mean(0).tolist(), "audio_std": a.std(0).clamp_min(1e-4).tolist(),
        }
        return self

    def _stat(self, key: str, like: Tensor) -> Tensor | float:
        if key not in self.cfg.stats:
            return 0.0 if key.endswith("mean") else 1.0
        return torch.tensor(self.cfg.stats[key], dtype=like.dtype, device=like.device)

    def encode(self, clip: AVClip) -> tuple[Tensor, Tensor]:
        v, a = self.encode_raw(clip)
        v = (v - self._stat("video_mean", v)) / self._stat("video_std", v)
        a = (a - self._stat("audio_mean", a)) / self._stat("audio_std", a)
        return v.contiguous(), a.contiguous()

    @torch.no_grad()
    def decode(self, video: Tensor, audio: Tensor) -> AVClip:
        video, audio = video.float().cpu(), audio.float().cpu()
        video = video * self._stat("video_std", video) + self._stat("video_mean", video)
        audio = audio * self._stat("audio_std", audio) + self._stat("audio_mean", audio)
        frames = self._decode(self._video, video.reshape(-1, video.shape[-1]), self._video_order)
        frames = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (T, H, W, 3)
        ah, aw, c = self._audio_grid
        grid = audio.reshape(aw, ah, c).permute(1, 0, 2).reshape(ah * aw, c)
        mel = image_to_mel(self._decode(self._audio, grid, self._audio_order))  # (80, F)
        wave = mel_to_wave(mel, self.mel).reshape(1, -1).clamp(-1, 1)
        samples = round(self.frames / self.cfg.fps * self.mel.sample_rate)
        wave = F.pad(wave, (0, max(0, samples - wave.shape[1])))[:, :samples]  # exactly the video's span
        return AVClip(video=frames.contiguous(), fps=self.cfg.fps, audio=wave.float().contiguous(),
                      sample_rate=self.mel.sample_rate)

    def _decode(self, template: TokenizerOutput, grid_latents: Tensor, order: Tensor) -> Tensor:
        dev = self.tokenizer.patch_embed.weight.device
        flat = torch.empty_like(grid_latents)
        flat[order] = grid_latents  # back to the tokenizer's token order
        out = dataclasses.replace(template, latents=flat.to(dev), mean=None, logvar=None, indices=None)
        return self.tokenizer.decode(out)[0].float().cpu()


def _grid_order(coords: Tensor, height: int, width: int) -> Tensor:
    """Permutation that sorts one sample's tokens into (t, y, x) row-major grid order."""
    t, x, y = coords[:, 0].long(), coords[:, 1].long(), coords[:, 2].long()
    return torch.argsort((t * height + y) * width + x).cpu()
