"""Ovi's audio VAE: MMAudio's 1-D mel VAE (``v1-16.pth``), 80 log-mel bins <-> 20 latent channels at half rate.

Every layer is magnitude preserving (EDM2, Karras et al. 2024): bias-free convolutions whose weights
are normalised per output channel, ``mp_silu``, ``mp_sum`` residuals and pixel norm. The checkpoint
stores the weights *before* that normalisation; :func:`load_audio_vae` folds it in once, as MMAudio's
``remove_weight_norm()`` does (an unfolded :class:`MPConv1d` normalises on the fly, which gives the
same numbers and lets the weights train).

Module and parameter names follow the official checkpoint, so it loads key for key. Shapes: a mel
``(B, 80, F)`` encodes to ``(B, 20, F // 2)`` (an odd last frame is dropped by the average pool);
a latent ``(B, 20, L)`` decodes to ``(B, 80, 2L)``. Ovi feeds the DiT the posterior mean transposed to
``(L, 20)``, with no scale or shift: the only normalisation is the per-bin mel one inside the VAE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avtok.generator.ovi.checkpoints import load_exact, read_state_dict

__all__ = [
    "AUDIO_VAE_PRESETS",
    "AudioPosterior",
    "AudioVAE",
    "AudioVAEConfig",
    "MPConv1d",
    "audio_vae_config_from_state_dict",
    "load_audio_vae",
    "mp_normalize_weight",
    "mp_silu",
    "mp_sum",
    "pixel_norm",
]

_EPS = 1e-4  # EDM2's normalisation eps (added to the RMS, not under the square root)
_SILU_GAIN = 0.596  # 1 / std of silu(N(0, 1))
_SUM_T = 0.3  # residual blend: (0.7 x + 0.3 h) / sqrt(0.7² + 0.3²)
_LOGVAR_RANGE = (-30.0, 20.0)


@dataclass(kw_only=True, frozen=True)
class AudioVAEConfig:
    """MMAudio ``VAE_16k``; widths are ``hidden_dim * ch_mult``, one 2x resampling after each level in ``down_levels``."""

    mel_bins: int = 80
    latent_dim: int = 20
    hidden_dim: int = 384
    ch_mult: tuple[int, ...] = (1, 2, 4)
    encoder_blocks: int = 2
    decoder_blocks: int = 3
    down_levels: tuple[int, ...] = (0,)
    kernel_size: int = 3
    clip_act: float = 256.0

    @property
    def downsample(self) -> int:
        """Mel frames per latent frame."""
        return 2 ** len(self.down_levels)


AUDIO_VAE_PRESETS: dict[str, AudioVAEConfig] = {
    "mmaudio-16k": AudioVAEConfig(),  # Ovi's (v1-16.pth)
    "tiny": AudioVAEConfig(hidden_dim=16),  # tests
}


def mp_silu(x: Tensor) -> Tensor:
    return F.silu(x) / _SILU_GAIN


def mp_sum(a: Tensor, b: Tensor, t: float = _SUM_T) -> Tensor:
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def pixel_norm(x: Tensor, dim: int = 1) -> Tensor:
    """``x / (eps + rms(x))`` over ``dim`` (the norm in float32)."""
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(_EPS, norm, alpha=math.sqrt(1 / x.shape[dim]))
    return x / norm.to(x.dtype)


def mp_normalize_weight(w: Tensor) -> Tensor:
    """``w / (‖w_o‖ + eps·sqrt(fan_in))`` per output channel, computed in float32 (MMAudio's load-time fold)."""
    w32 = w.float()
    fan_in = w32[0].numel()
    norm = torch.linalg.vector_norm(w32, dim=tuple(range(1, w32.ndim)), keepdim=True)
    w32 = w32 / torch.add(_EPS, norm, alpha=math.sqrt(1 / fan_in))  # unit RMS per output channel
    return (w32 / math.sqrt(fan_in)).to(w.dtype)  # unit norm per output channel


class MPConv1d(nn.Module):
    """Bias-free conv with "same" padding and a weight normalised per output channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size))
        self.folded = False  # True once the normalisation is folded into `weight`

    @torch.no_grad()
    def fold_weight_norm(self) -> None:
        if not self.folded:
            self.weight.copy_(mp_normalize_weight(self.weight))
            self.folded = True

    def forward(self, x: Tensor, gain: Tensor | None = None) -> Tensor:
        w = self.weight if self.folded else mp_normalize_weight(self.weight)
        if gain is not None:
            w = w * gain
        return F.conv1d(x, w, padding=w.shape[-1] // 2)


class ResBlock1d(nn.Module):
    """``mp_sum(x', conv2(mp_silu(conv1(mp_silu(x')))))`` with ``x' = pixel_norm(x)`` (1x1 shortcut on x' if the width changes)."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(in_dim, out_dim, kernel_size)
        self.conv2 = MPConv1d(out_dim, out_dim, kernel_size)
        self.nin_shortcut = MPConv1d(in_dim, out_dim, 1) if in_dim != out_dim else None

    def forward(self, x: Tensor) -> Tensor:
        x = pixel_norm(x)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return mp_sum(x, h)


class Attention1d(nn.Module):
    """One-head self-attention over time; q, k, v pixel-normalised; qkv channels interleaved as ``c·3 + j``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = MPConv1d(dim, 3 * dim, 1)
        self.proj_out = MPConv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, length = x.shape
        qkv = pixel_norm(self.qkv(x).reshape(b, -1, 3, length), dim=1)  # (B, C, 3, L)
        q, k, v = (t.transpose(1, 2).unsqueeze(1) for t in qkv.unbind(2))  # (B, 1, L, C) each
        h = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2)  # (B, C, L)
        return mp_sum(x, self.proj_out(h))


class _Mid(nn.Module):
    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.block_1 = ResBlock1d(dim, dim, kernel_size)
        self.attn_1 = Attention1d(dim)
        self.block_2 = ResBlock1d(dim, dim, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Downsample(nn.Module):
    """1x1 conv, ``avg_pool1d(2)`` (floor), 1x1 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(dim, dim, 1)
        self.conv2 = MPConv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))


class _Upsample(nn.Module):
    """Nearest x2, then a conv."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = MPConv1d(dim, dim, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


class _Level(nn.Module):
    def __init__(self, blocks: list[ResBlock1d], resample: nn.Module | None, name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.resample_name = name
        if resample is not None:
            self.add_module(name, resample)

    def resample(self, x: Tensor) -> Tensor:
        module = getattr(self, self.resample_name, None)
        return x if module is None else module(x)


class Encoder1d(nn.Module):
    """conv_in, levels of res blocks (each output clamped), mid (res, attention, res), mp_silu, conv_out (gained)."""

    def __init__(self, cfg: AudioVAEConfig) -> None:
        super().__init__()
        self.clip_act = cfg.clip_act
        widths = [cfg.hidden_dim * m for m in cfg.ch_mult]
        self.conv_in = MPConv1d(cfg.mel_bins, widths[0], cfg.kernel_size)
        levels, dim = [], widths[0]
        for i, width in enumerate(widths):
            blocks = []
            for _ in range(cfg.encoder_blocks):
                blocks.append(ResBlock1d(dim, width, cfg.kernel_size))
                dim = width
            levels.append(_Level(blocks, _Downsample(dim) if i in cfg.down_levels else None, "downsample"))
        self.down = nn.ModuleList(levels)
        self.mid = _Mid(dim, cfg.kernel_size)
        self.conv_out = MPConv1d(dim, 2 * cfg.latent_dim, cfg.kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)  # (B, C, F)
        for level in self.down:
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            h = level.resample(h)
        h = self.mid(h).clamp(-self.clip_act, self.clip_act)  # (B, 4C, F // 2)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)  # (B, 2 * latent, F // 2)


class Decoder1d(nn.Module):
    """conv_in, mid, levels from the deepest up (each block output clamped), mp_silu, conv_out (gained)."""

    def __init__(self, cfg: AudioVAEConfig) -> None:
        super().__init__()
        self.clip_act = cfg.clip_act
        widths = [cfg.hidden_dim * m for m in cfg.ch_mult]
        dim = widths[-1]
        self.conv_in = MPConv1d(cfg.latent_dim, dim, cfg.kernel_size)
        self.mid = _Mid(dim, cfg.kernel_size)
        up_levels = {i + 1 for i in cfg.down_levels}
        levels: list[_Level] = []
        for i in reversed(range(len(widths))):
            blocks = []
            for _ in range(cfg.decoder_blocks):
                blocks.append(ResBlock1d(dim, widths[i], cfg.kernel_size))
                dim = widths[i]
            up = _Upsample(dim, cfg.kernel_size) if i in up_levels else None
            levels.insert(0, _Level(blocks, up, "upsample"))
        self.up = nn.ModuleList(levels)  # indexed by level, run deepest first
        self.conv_out = MPConv1d(dim, cfg.mel_bins, cfg.kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z)).clamp(-self.clip_act, self.clip_act)  # (B, 4C, L)
        for level in reversed(self.up):
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            h = level.resample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)  # (B, mel_bins, 2L)


@dataclass(kw_only=True)
class AudioPosterior:
    """mean, logvar: (B, latent_dim, L) float32; logvar clamped to [-30, 20]. Ovi uses the mean."""

    mean: Tensor
    logvar: Tensor


class AudioVAE(nn.Module):
    """Log-mel (B, 80, F) <-> latent (B, 20, F // 2); per-bin mel statistics ``data_mean`` / ``data_std`` from the checkpoint."""

    def __init__(self, cfg: AudioVAEConfig = AudioVAEConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        # the official 80-bin statistics live in the checkpoint; a fresh model starts at identity
        self.register_buffer("data_mean", torch.zeros(1, cfg.mel_bins, 1))
        self.register_buffer("data_std", torch.ones(1, cfg.mel_bins, 1))
        self.encoder = Encoder1d(cfg)
        self.decoder = Decoder1d(cfg)

    def normalize(self, mel: Tensor) -> Tensor:
        return (mel - self.data_mean) / self.data_std

    def unnormalize(self, x: Tensor) -> Tensor:
        return x * self.data_std + self.data_mean

    def encode_moments(self, mel: Tensor) -> Tensor:
        """(B, 80, F) log-mel -> (B, 2 * latent_dim, F // 2): mean then log-variance (unclamped)."""
        return self.encoder(self.normalize(mel))

    def posterior(self, mel: Tensor) -> AudioPosterior:
        mean, logvar = self.encode_moments(mel).chunk(2, dim=1)
        return AudioPosterior(mean=mean, logvar=logvar.clamp(*_LOGVAR_RANGE))

    def encode(self, mel: Tensor) -> Tensor:
        """(B, 80, F) log-mel -> (B, latent_dim, F // 2) posterior mean (Ovi's ``wrapped_encode``)."""
        return self.encode_moments(mel)[:, : self.cfg.latent_dim]

    def decode(self, z: Tensor) -> Tensor:
        """(B, latent_dim, L) -> (B, 80, 2L) log10-mel (un-normalised)."""
        return self.unnormalize(self.decoder(z))

    def fold_weight_norm(self) -> AudioVAE:
        for m in self.modules():
            if isinstance(m, MPConv1d):
                m.fold_weight_norm()
        return self


def audio_vae_config_from_state_dict(state: dict[str, Tensor]) -> AudioVAEConfig:
    """Sizes of an MMAudio VAE checkpoint (mel bins, latent dim, hidden dim); the rest is the 16 kHz layout."""
    try:
        hidden, mel_bins, _ = state["encoder.conv_in.weight"].shape
        latent = state["decoder.conv_in.weight"].shape[1]
    except KeyError as err:
        raise ValueError(f"not an MMAudio VAE state dict: no {err}; pass v1-16.pth") from err
    return AudioVAEConfig(mel_bins=mel_bins, latent_dim=latent, hidden_dim=hidden)


def load_audio_vae(
    path: str | Path | dict[str, Tensor], *, config: AudioVAEConfig | None = None, prefix: str = ""
) -> AudioVAE:
    """MMAudio's VAE from ``v1-16.pth`` (or safetensors / a state dict), weight norm folded, in eval mode.

    ``prefix`` selects keys of a combined file (e.g. ``"vae."``); the config is read from the shapes unless given.
    """
    source = "state dict" if isinstance(path, dict) else str(path)
    state = dict(path) if isinstance(path, dict) else read_state_dict(path)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    model = AudioVAE(config or audio_vae_config_from_state_dict(state))
    load_exact(model, {k: v.float() for k, v in state.items()}, source=source)
    return model.fold_weight_norm().eval().requires_grad_(False)
