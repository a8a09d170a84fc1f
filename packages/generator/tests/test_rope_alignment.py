"""Ovi Fig. 2 as a numeric check: scaled audio RoPE puts cross-modal affinity on the time diagonal."""

import pytest
import torch

from avtok.generator.ovi.config import LatentSpec, build_config
from avtok.generator.ovi.twin_dit import TwinDiT

SPEC = LatentSpec.from_media(
    frames=121,
    fps=24,
    temporal_stride=4,
    height=16,
    width=16,
    spatial_stride=16,
    video_channels=48,
    audio_samples=80000,
    audio_hop=512,
    audio_channels=20,
)


def affinity(scale: float, preset: str = "ovi-11b") -> torch.Tensor:
    """(La, T') RoPE affinity of identical audio queries and video keys (heads of the preset's width)."""
    with torch.device("meta"):
        m = TwinDiT(build_config(preset))
    rope_v, rope_a = m.ropes((SPEC.video_frames, 1, 1), SPEC.audio_tokens, scale, torch.device("cpu"))
    d = m.cfg.head_dim
    q = rope_a(torch.ones(1, 1, SPEC.audio_tokens, d, dtype=torch.float64))  # (1, 1, La, Dh)
    k = rope_v(torch.ones(1, 1, SPEC.video_frames, d, dtype=torch.float64))  # (1, 1, T', Dh)
    return (q @ k.transpose(-1, -2))[0, 0]  # (La, T')


def diagonal_error(aff: torch.Tensor, scale: float) -> torch.Tensor:
    target = (torch.arange(aff.shape[0], dtype=torch.float64) * SPEC.audio_rope_scale).clamp(
        max=aff.shape[1] - 1
    )
    return (aff.argmax(-1).double() - target).abs()  # (La,) distance of each peak from the true time


@pytest.mark.parametrize("preset", ["ovi-11b", "small"])
def test_scaled_rope_peaks_on_time_aligned_diagonal(preset):
    scale = SPEC.audio_rope_scale
    err = diagonal_error(affinity(scale, preset), scale)
    assert err.max() <= 0.5 + 1e-9  # every audio token's peak is the nearest video latent frame


def test_unscaled_rope_is_misaligned():
    err = diagonal_error(affinity(1.0), 1.0)
    assert (err > 2).float().mean() > 0.7  # most audio tokens peak far from their video frame


def test_audio_rope_rotates_only_the_temporal_band():
    with torch.device("meta"):
        m = TwinDiT(build_config("ovi-11b"))
    _, rope_a = m.ropes((2, 1, 1), 5, 0.5, torch.device("cpu"))
    x = torch.randn(1, 2, 5, m.cfg.head_dim)
    band = m.cfg.rope_axes[0]
    y = rope_a(x)
    torch.testing.assert_close(y[..., band:], x[..., band:], rtol=0, atol=0)
    assert (y[:, :, 1:, :band] - x[:, :, 1:, :band]).abs().max() > 1e-2
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))  # a rotation
