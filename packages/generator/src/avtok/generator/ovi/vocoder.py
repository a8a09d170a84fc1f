"""Ovi's vocoder: BigVGAN v1 (MMAudio's ``best_netG.pt``, ``bigvgan_vocoder.yml``), 16 kHz log10-mel -> waveform.

conv_pre, then per stage a transposed-conv upsampler and three AMP blocks (kernels 3, 7, 11) run on
the same input and averaged; a final activation, conv_post and tanh. Every activation is an
anti-aliased SnakeBeta: 2x upsample with a Kaiser-windowed sinc low-pass, ``x + sin²(x·e^α) / e^β``,
low-pass and 2x downsample. The convolutions carry torch's weight-norm parametrisation, so the
official checkpoint (``...parametrizations.weight.original0`` = g, ``original1`` = v) loads key for
key; :func:`load_bigvgan` folds it once, as the official loader does. The ``bigvgan`` PyPI package
is BigVGAN v2 (different layout, hub download), hence this module.

Shapes: mel (B, 80, F) -> waveform (B, 1, F · 256) in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.parametrize import is_parametrized, remove_parametrizations

from avtok.generator.ovi.checkpoints import load_exact, read_state_dict

__all__ = [
    "BIGVGAN_PRESETS",
    "BigVGAN",
    "BigVGANConfig",
    "bigvgan_config_from_state_dict",
    "kaiser_sinc_lowpass",
    "load_bigvgan",
]

_FILTER_TAPS = 12
_CUTOFF, _HALF_WIDTH = 0.25, 0.3  # of the 2x resampling low-pass, in units of the upsampled rate


@dataclass(kw_only=True, frozen=True)
class BigVGANConfig:
    """``bigvgan_vocoder.yml`` (resblock type 1, SnakeBeta with log-scale α, β); hop = prod(upsample_rates)."""

    num_mels: int = 80
    upsample_initial_channel: int = 1536
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)


BIGVGAN_PRESETS: dict[str, BigVGANConfig] = {
    "mmaudio-16k": BigVGANConfig(),  # Ovi's (best_netG.pt)
    "tiny": BigVGANConfig(upsample_initial_channel=64),  # tests
}


def kaiser_sinc_lowpass(
    cutoff: float = _CUTOFF, half_width: float = _HALF_WIDTH, taps: int = _FILTER_TAPS
) -> Tensor:
    """(1, 1, taps) Kaiser-windowed sinc low-pass with unit DC gain (Kaiser's β from the attenuation formula)."""
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95  # dB
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, periodic=False, beta=beta)
    t = torch.arange(-half, half) + 0.5 if taps % 2 == 0 else torch.arange(taps) - half
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (h / h.sum()).view(1, 1, taps)


class SnakeBeta(nn.Module):
    """``x + sin²(x·e^α) / (e^β + 1e-9)`` per channel (α, β stored in log scale)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        alpha = self.alpha.exp()[None, :, None]
        beta = self.beta.exp()[None, :, None]
        return x + (1.0 / (beta + 1e-9)) * torch.sin(x * alpha).pow(2)


class _Upsample2x(nn.Module):
    """Replicate-pad, zero-stuffing transposed conv with the low-pass (x2 gain), crop: (B, C, T) -> (B, C, 2T)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_lowpass())
        self.pad = _FILTER_TAPS // 2 - 1
        self.crop = self.pad * 2 + (_FILTER_TAPS - 2) // 2

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = 2 * F.conv_transpose1d(x, self.filter.expand(c, -1, -1), stride=2, groups=c)
        return x[..., self.crop : -self.crop]


class _LowPass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_lowpass())

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        x = F.pad(x, (_FILTER_TAPS // 2 - 1, _FILTER_TAPS // 2), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=2, groups=c)


class _Downsample2x(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lowpass = _LowPass()

    def forward(self, x: Tensor) -> Tensor:
        return self.lowpass(x)


class AntiAliasedSnakeBeta(nn.Module):
    """Upsample x2, SnakeBeta, low-pass and downsample x2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = _Upsample2x()
        self.downsample = _Downsample2x()

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _conv(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Module:
    return weight_norm(nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2))


class AMPBlock(nn.Module):
    """For each dilation d: ``x = x + conv2(act(conv1_d(act(x))))`` (BigVGAN's AMPBlock1)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(_conv(channels, channels, kernel, d) for d in dilations)
        self.convs2 = nn.ModuleList(_conv(channels, channels, kernel) for _ in dilations)
        self.activations = nn.ModuleList(AntiAliasedSnakeBeta(channels) for _ in range(2 * len(dilations)))

    def forward(self, x: Tensor) -> Tensor:
        for j, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            x = c2(self.activations[2 * j + 1](c1(self.activations[2 * j](x)))) + x
        return x


class BigVGAN(nn.Module):
    """BigVGAN v1 generator; built with weight-norm parametrisations (the official checkpoint layout)."""

    def __init__(self, cfg: BigVGANConfig = BigVGANConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = cfg.upsample_initial_channel
        self.conv_pre = _conv(cfg.num_mels, c0, 7)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            cin, cout = c0 // 2**i, c0 // 2 ** (i + 1)
            up = nn.ConvTranspose1d(cin, cout, kernel, rate, padding=(kernel - rate) // 2)
            self.ups.append(nn.ModuleList([weight_norm(up)]))
            for k, dils in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(AMPBlock(cout, k, tuple(dils)))
        self.activation_post = AntiAliasedSnakeBeta(cout)
        self.conv_post = _conv(cout, 1, 7)

    def forward(self, mel: Tensor) -> Tensor:
        """(B, num_mels, F) log10-mel -> (B, 1, F · hop) waveform in [-1, 1]."""
        x = self.conv_pre(mel)
        n = len(self.cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up[0](x)  # (B, C_i, T_i)
            blocks = self.resblocks[i * n : (i + 1) * n]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / n
        return torch.tanh(self.conv_post(self.activation_post(x)))

    def fold_weight_norm(self) -> BigVGAN:
        """Replace every ``g · v / ‖v‖`` parametrisation by its value (what inference uses)."""
        for m in self.modules():
            if is_parametrized(m, "weight"):
                remove_parametrizations(m, "weight", leave_parametrized=True)
        return self


def bigvgan_config_from_state_dict(state: dict[str, Tensor]) -> BigVGANConfig:
    """Mel bins and width of a BigVGAN checkpoint; the rest is ``bigvgan_vocoder.yml``."""
    for key in ("conv_pre.parametrizations.weight.original1", "conv_pre.weight"):
        if key in state:
            width, mels, _ = state[key].shape
            return BigVGANConfig(num_mels=mels, upsample_initial_channel=width)
    raise ValueError("not a BigVGAN generator state dict: no conv_pre weight; pass best_netG.pt")


def load_bigvgan(
    path: str | Path | dict[str, Tensor], *, config: BigVGANConfig | None = None, prefix: str = ""
) -> BigVGAN:
    """BigVGAN from ``best_netG.pt`` (its ``generator`` entry), a safetensors file or a state dict; weight norm folded, eval."""
    if isinstance(path, dict):
        source, state = "state dict", dict(path)
    else:
        source = str(path)
        state = read_state_dict(path, key=None if str(path).endswith(".safetensors") else "generator")
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    model = BigVGAN(config or bigvgan_config_from_state_dict(state))
    if "conv_pre.weight" in state:  # an already folded export
        model.fold_weight_norm()
    load_exact(model, {k: v.float() for k, v in state.items()}, source=source)
    return model.fold_weight_norm().eval().requires_grad_(False)
