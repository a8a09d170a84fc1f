"""Typed configs of the Ovi-style twin DiT: the latent layout, the towers, presets and parameter counts.

The audio tower's RoPE scale is *derived* from :class:`LatentSpec` (video latent frames per second over
audio latent tokens per second) — Ovi's 31/157 for 5 s at 24 fps / 16 kHz — never hard-coded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["PRESETS", "LatentSpec", "TwinDiTConfig", "build_config", "count_parameters_formula"]


@dataclass(kw_only=True, frozen=True)
class LatentSpec:
    """Shapes and rates of the latents the generator works on.

    video latents: (B, T', H', W', Cv) at ``video_latent_rate`` latent frames per second;
    audio latents: (B, La, Ca) at ``audio_latent_rate`` tokens per second.
    """

    video_frames: int
    video_height: int
    video_width: int
    video_channels: int
    video_latent_rate: float
    audio_tokens: int
    audio_channels: int
    audio_latent_rate: float

    def __post_init__(self) -> None:
        ints = {k: v for k, v in asdict(self).items() if not k.endswith("rate")}
        bad = {k: v for k, v in ints.items() if int(v) < 1}
        if bad or self.video_latent_rate <= 0 or self.audio_latent_rate <= 0:
            raise ValueError(f"LatentSpec: sizes and rates must be positive, got {asdict(self)}")

    @classmethod
    def from_media(
        cls,
        *,
        frames: int,
        fps: float,
        temporal_stride: int,
        height: int,
        width: int,
        spatial_stride: int,
        video_channels: int,
        audio_samples: int,
        audio_hop: int,
        audio_channels: int,
    ) -> LatentSpec:
        """Derive the latent grid from the tokenizer strides of a clip of ``frames`` frames.

        Causal video VAE (Wan): 1 + (frames − 1) / stride latent frames; audio: ceil(samples / hop)
        tokens. Both latents span the same clip (``frames / fps`` seconds), so the RoPE scale is
        latent frames / audio tokens — Ovi's 31/157 for 121 frames and 5 s of 16 kHz audio at hop 512.
        """
        seconds = frames / fps
        t_lat = 1 + (frames - 1) // temporal_stride
        tokens = math.ceil(audio_samples / audio_hop)
        return cls(
            video_frames=t_lat,
            video_height=height // spatial_stride,
            video_width=width // spatial_stride,
            video_channels=video_channels,
            video_latent_rate=t_lat / seconds,
            audio_tokens=tokens,
            audio_channels=audio_channels,
            audio_latent_rate=tokens / seconds,
        )

    @property
    def audio_rope_scale(self) -> float:
        """Factor on audio's temporal RoPE frequencies: audio token k sits at video latent frame k·scale."""
        return self.video_latent_rate / self.audio_latent_rate

    @property
    def seconds(self) -> float:
        return self.video_frames / self.video_latent_rate

    def video_shape(self, batch: int) -> tuple[int, int, int, int, int]:
        return (batch, self.video_frames, self.video_height, self.video_width, self.video_channels)

    def audio_shape(self, batch: int) -> tuple[int, int, int]:
        return (batch, self.audio_tokens, self.audio_channels)


@dataclass(kw_only=True)
class TwinDiTConfig:
    """Both towers share width, depth, heads and FFN (Ovi Table 1: architectural symmetry)."""

    dim: int
    depth: int
    heads: int
    ffn_dim: int
    text_dim: int = 384  # MiniLM-L6 width; Ovi's umT5-XXL gives 4096
    freq_dim: int = 256  # sinusoidal timestep features (Wan)
    video_channels: int = 48  # Wan2.2 VAE latent channels
    audio_channels: int = 20  # Ovi's 1D audio VAE channels
    video_patch: tuple[int, int, int] = (1, 2, 2)
    rope_theta: float = 10000.0
    audio_rope_scale: float | None = None  # None: take it from the LatentSpec at forward time
    qk_norm: bool = True
    eps: float = 1e-6
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"TwinDiTConfig: dim={self.dim} must be divisible by heads={self.heads}")
        if self.head_dim % 2 or self.head_dim < 8:
            raise ValueError(
                f"TwinDiTConfig: head_dim={self.head_dim} must be even and >= 8; change dim or heads"
            )
        if self.depth < 1 or self.ffn_dim < 1:
            raise ValueError(f"TwinDiTConfig: depth={self.depth}, ffn_dim={self.ffn_dim} must be >= 1")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def rope_axes(self) -> tuple[int, int, int]:
        """Wan's split of the head dim into (t, h, w) bands: h = w = 2·(d//6), t gets the rest."""
        hw = 2 * (self.head_dim // 6)
        return (self.head_dim - 2 * hw, hw, hw)

    def to_dict(self) -> dict:
        return asdict(self)


def _tower_params(cfg: TwinDiTConfig, in_channels: int, patch: int) -> dict[str, int]:
    d, f = cfg.dim, cfg.ffn_dim
    lin = lambda i, o: i * o + o  # noqa: E731 - a weight plus a bias
    attn = 4 * lin(d, d) + (2 * d if cfg.qk_norm else 0)
    block = {
        "self_attn": attn,
        "cross_attn": attn + 2 * lin(d, d) + (d if cfg.qk_norm else 0) + 2 * d,  # text + fusion k/v + norm3
        "ffn": lin(d, f) + lin(f, d),
        "modulation": 6 * d,
    }
    return {
        "patch_embed": lin(in_channels * patch, d),
        "text_embed": lin(cfg.text_dim, d) + lin(d, d),
        "time_embed": lin(cfg.freq_dim, d) + lin(d, d) + lin(d, 6 * d),
        "blocks": cfg.depth * sum(block.values()),
        "ffn": cfg.depth * block["ffn"],
        "head": lin(d, in_channels * patch) + 2 * d,
    }


def count_parameters_formula(cfg: TwinDiTConfig) -> dict[str, int]:
    """Closed-form parameter counts: per tower, total, and FFN (frozen in Ovi's fusion stage)."""
    video = _tower_params(cfg, cfg.video_channels, math.prod(cfg.video_patch))
    audio = _tower_params(cfg, cfg.audio_channels, 1)
    tower = lambda p: sum(v for k, v in p.items() if k != "ffn")  # noqa: E731 - ffn is inside blocks
    return {
        "video": tower(video),
        "audio": tower(audio),
        "total": tower(video) + tower(audio),
        "ffn": video["ffn"] + audio["ffn"],
    }


def _tiny() -> TwinDiTConfig:
    return TwinDiTConfig(
        name="tiny",
        dim=64,
        depth=2,
        heads=4,
        ffn_dim=128,
        text_dim=384,
        freq_dim=64,
        video_channels=3,
        audio_channels=80,
        video_patch=(1, 1, 1),
    )


def _small() -> TwinDiTConfig:
    return TwinDiTConfig(
        name="small",
        dim=512,
        depth=8,
        heads=8,
        ffn_dim=2048,
        text_dim=384,
        video_channels=16,
        audio_channels=20,
        video_patch=(1, 2, 2),
    )


def _ovi_11b() -> TwinDiTConfig:
    # Ovi: Wan2.2-5B geometry per tower; text from umT5-XXL (4096-d)
    return TwinDiTConfig(
        name="ovi-11b",
        dim=3072,
        depth=30,
        heads=24,
        ffn_dim=14336,
        text_dim=4096,
        video_channels=48,
        audio_channels=20,
        video_patch=(1, 2, 2),
    )


PRESETS = {"tiny": _tiny, "small": _small, "ovi-11b": _ovi_11b}


def build_config(name: str, **overrides) -> TwinDiTConfig:
    """A preset by name with optional field overrides (``build_config("tiny", depth=1)``)."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r}: choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return TwinDiTConfig(**{**cfg.to_dict(), **overrides}) if overrides else cfg
