"""Ovi-style twin DiT: two identical towers (video, audio) fused in every block.

Block order and fusion form follow Ovi's public inference code (``ovi/modules/fusion.py`` on Wan2.2):

1. audio self-attention, then video self-attention (adaLN shift/scale/gate from the timestep);
2. audio cross-attention to text **and** to the *updated* video stream (after step 1), then audio FFN;
3. video cross-attention to text and to the audio stream as it was *before* step 2, then video FFN.

The fusion path reuses the text cross-attention's query: ``o(attn(q, k_text, v_text) +
attn(rope(q), rope_other(k_fus), v_fus))`` — the two attention outputs are summed before the output
projection. RoPE: video 3D (t, h, w) on Wan's head-dim split; audio rotates only the temporal band, with
its frequencies scaled by video latent rate / audio latent rate so token k of audio lands on video frame
k·scale (Ovi Fig. 2). Self-attention uses the same RoPE (Ovi applies scaled RoPE to all audio attention).
Deviations: the timestep modulation is per sample (Wan2.2-TI2V modulates per token for its image
condition, which avtok does not have); both towers embed the shared text features with their own MLP
(as in Ovi, where each tower keeps Wan's ``text_embedding``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from avtok.generator.ovi.config import LatentSpec, TwinDiTConfig
from avtok.kernels import attention, rope_nd
from avtok.train.pretrained import register_model
from avtok.train.transformer import MLP

__all__ = ["CrossModalAttention", "DiTBlock", "Tower", "TwinDiT", "TwinOutput", "timestep_features"]

Rope = Callable[[Tensor], Tensor]  # (B, H, L, Dh) -> same


def timestep_features(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of t in [0, 1] (scaled to [0, 1000] like Wan) -> (B, dim) fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float64) / half)
    args = (t.double() * 1000.0).unsqueeze(-1) * freqs  # (B, half)
    return torch.cat((args.cos(), args.sin()), dim=-1).float()


def _heads(x: Tensor, heads: int) -> Tensor:
    return rearrange(x, "b l (h d) -> b h l d", h=heads)


class SelfAttention(nn.Module):
    def __init__(self, cfg: TwinDiTConfig) -> None:
        super().__init__()
        d, self.heads = cfg.dim, cfg.heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.norm_q = nn.RMSNorm(d, eps=cfg.eps) if cfg.qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(d, eps=cfg.eps) if cfg.qk_norm else nn.Identity()

    def forward(self, x: Tensor, rope: Rope) -> Tensor:  # x (B, L, D)
        q = rope(_heads(self.norm_q(self.q(x)), self.heads))  # (B, H, L, Dh)
        k = rope(_heads(self.norm_k(self.k(x)), self.heads))
        o = attention(q, k, _heads(self.v(x), self.heads))
        return self.o(rearrange(o, "b h l d -> b l (h d)"))


class CrossModalAttention(SelfAttention):
    """Text cross-attention plus the cross-modal (fusion) path sharing its query and output projection."""

    def __init__(self, cfg: TwinDiTConfig) -> None:
        super().__init__(cfg)
        self.k_fusion, self.v_fusion = nn.Linear(cfg.dim, cfg.dim), nn.Linear(cfg.dim, cfg.dim)
        self.norm_k_fusion = nn.RMSNorm(cfg.dim, eps=cfg.eps) if cfg.qk_norm else nn.Identity()

    def forward(
        self,
        x: Tensor,
        text: Tensor,
        text_mask: Tensor | None,
        other: Tensor,  # type: ignore[override]
        rope_self: Rope,
        rope_other: Rope,
    ) -> Tensor:
        q = _heads(self.norm_q(self.q(x)), self.heads)  # (B, H, L, Dh)
        k_t = _heads(self.norm_k(self.k(text)), self.heads)  # (B, H, Lt, Dh)
        mask = None if text_mask is None else text_mask[:, None, None, :]  # (B, 1, 1, Lt)
        out = attention(q, k_t, _heads(self.v(text), self.heads), mask=mask)
        k_f = rope_other(_heads(self.norm_k_fusion(self.k_fusion(other)), self.heads))  # (B, H, Lo, Dh)
        out = out + attention(rope_self(q), k_f, _heads(self.v_fusion(other), self.heads))
        return self.o(rearrange(out, "b h l d -> b l (h d)"))


class DiTBlock(nn.Module):
    """One tower block: adaLN self-attention, text + cross-modal attention, adaLN FFN."""

    def __init__(self, cfg: TwinDiTConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.norm1 = nn.LayerNorm(d, eps=cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg)
        self.norm3 = nn.LayerNorm(d, eps=cfg.eps)  # cross-attention input norm (affine, unmodulated)
        self.cross_attn = CrossModalAttention(cfg)
        self.norm2 = nn.LayerNorm(d, eps=cfg.eps, elementwise_affine=False)
        self.ffn = MLP(d, cfg.ffn_dim)
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / d**0.5)

    def mods(self, e: Tensor) -> tuple[Tensor, ...]:
        """e (B, 6, D) from the tower's timestep projection -> six (B, 1, D) shift/scale/gate terms."""
        return (self.modulation + e).unsqueeze(2).unbind(1)

    def self_attention(self, x: Tensor, e: Tensor, rope: Rope) -> Tensor:
        shift, scale, gate = self.mods(e)[:3]
        return x + gate * self.self_attn(self.norm1(x) * (1 + scale) + shift, rope)

    def cross_and_ffn(
        self,
        x: Tensor,
        e: Tensor,
        text: Tensor,
        text_mask: Tensor | None,
        other: Tensor,
        rope_self: Rope,
        rope_other: Rope,
    ) -> Tensor:
        x = x + self.cross_attn(self.norm3(x), text, text_mask, other, rope_self, rope_other)
        shift, scale, gate = self.mods(e)[3:]
        return x + gate * self.ffn(self.norm2(x) * (1 + scale) + shift)


class Tower(nn.Module):
    """Patch embedding, text / timestep embeddings, ``depth`` blocks and the modulated output head."""

    def __init__(self, cfg: TwinDiTConfig, in_features: int) -> None:
        super().__init__()
        d = cfg.dim
        self.cfg = cfg
        self.patch_embed = nn.Linear(in_features, d)
        self.text_embed = nn.Sequential(
            nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d)
        )
        self.time_embed = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.head_norm = nn.LayerNorm(d, eps=cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(d, in_features)
        self.head_modulation = nn.Parameter(torch.randn(1, 2, d) / d**0.5)

    def embed_time(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """t (B,) -> (e0 (B, D) for the head, e (B, 6, D) for the blocks)."""
        e0 = self.time_embed(timestep_features(t, self.cfg.freq_dim).to(self.head.weight.dtype))
        return e0, self.time_proj(e0).unflatten(-1, (6, self.cfg.dim))

    def output(self, x: Tensor, e0: Tensor) -> Tensor:
        shift, scale = (self.head_modulation + e0.unsqueeze(1)).unsqueeze(2).unbind(1)  # (B, 1, D) each
        return self.head(self.head_norm(x) * (1 + scale) + shift)


@dataclass(kw_only=True)
class TwinOutput:
    """Velocity predictions, same shapes as the inputs: video (B, T', H', W', Cv), audio (B, La, Ca)."""

    video: Tensor
    audio: Tensor


def _rope(coords: Tensor, axes: tuple[int, ...], theta: float, scales: tuple[float, ...]) -> Rope:
    return lambda x: rope_nd(x, coords, axes_dims=axes, theta=theta, scale_per_axis=scales)


class TwinDiT(nn.Module):
    """Video and audio towers with blockwise bidirectional fusion; predicts flow-matching velocities."""

    kind = "ovi-twin-dit"  # avtok.train.pretrained save_pretrained / from_pretrained

    def __init__(self, cfg: TwinDiTConfig) -> None:
        super().__init__()
        self.cfg = self.config = cfg
        self.video = Tower(cfg, cfg.video_channels * math.prod(cfg.video_patch))
        self.audio = Tower(cfg, cfg.audio_channels)

    def audio_rope_scale(self, video: Tensor, audio: Tensor, spec: LatentSpec | None) -> float:
        """Scale in units of *patchified* video frames per audio token (config > spec > shape ratio)."""
        if self.cfg.audio_rope_scale is not None:
            return self.cfg.audio_rope_scale
        per_frame = spec.audio_rope_scale if spec is not None else video.shape[1] / audio.shape[1]
        return per_frame / self.cfg.video_patch[0]

    def ropes(
        self, grid: tuple[int, int, int], audio_len: int, scale: float, device: torch.device
    ) -> tuple[Rope, Rope]:
        axes = self.cfg.rope_axes
        t, h, w = (torch.arange(n, device=device) for n in grid)
        vc = torch.stack(torch.meshgrid(t, h, w, indexing="ij"), dim=-1).flatten(0, 2)  # (Lv, 3)
        ac = torch.arange(audio_len, device=device).unsqueeze(-1)  # (La, 1)
        theta = self.cfg.rope_theta
        # audio: only the temporal band (the first axes[0] dims) rotates, at the scaled rate
        return _rope(vc, axes, theta, (1.0, 1.0, 1.0)), _rope(ac, axes[:1], theta, (scale,))

    def patchify(self, video: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        pt, ph, pw = self.cfg.video_patch
        _, t, h, w, c = video.shape
        if t % pt or h % ph or w % pw or c != self.cfg.video_channels:
            raise ValueError(
                f"TwinDiT: video latents {tuple(video.shape)} need (B, T', H', W', "
                f"{self.cfg.video_channels}) with T', H', W' divisible by {self.cfg.video_patch}"
            )
        x = rearrange(video, "b (t p) (h q) (w r) c -> b (t h w) (p q r c)", p=pt, q=ph, r=pw)
        return x, (t // pt, h // ph, w // pw)

    def unpatchify(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        pt, ph, pw = self.cfg.video_patch
        return rearrange(
            x,
            "b (t h w) (p q r c) -> b (t p) (h q) (w r) c",
            t=grid[0],
            h=grid[1],
            w=grid[2],
            p=pt,
            q=ph,
            r=pw,
        )

    def forward(
        self,
        video: Tensor,
        audio: Tensor,
        t_video: Tensor,
        t_audio: Tensor,
        text: Tensor,
        *,
        text_audio: Tensor | None = None,
        text_mask: Tensor | None = None,
        text_mask_audio: Tensor | None = None,
        spec: LatentSpec | None = None,
    ) -> TwinOutput:
        """video (B, T', H', W', Cv), audio (B, La, Ca), t_* (B,) in [0, 1], text (B, Lt, Dt).

        ``text`` conditions both towers unless ``text_audio`` is given (per-modality negative prompts).
        """
        if audio.ndim != 3 or audio.shape[-1] != self.cfg.audio_channels:
            raise ValueError(
                f"TwinDiT: audio latents {tuple(audio.shape)} must be (B, La, {self.cfg.audio_channels})"
            )
        v, grid = self.patchify(video)  # (B, Lv, Cv·p)
        v, a = self.video.patch_embed(v), self.audio.patch_embed(audio)  # (B, Lv, D), (B, La, D)
        ctx_v = self.video.text_embed(text)  # (B, Lt, D)
        ctx_a = self.audio.text_embed(text if text_audio is None else text_audio)
        mask_a = text_mask if text_audio is None else text_mask_audio
        e0_v, e_v = self.video.embed_time(t_video)
        e0_a, e_a = self.audio.embed_time(t_audio)
        rope_v, rope_a = self.ropes(grid, a.shape[1], self.audio_rope_scale(video, audio, spec), v.device)
        for vb, ab in zip(self.video.blocks, self.audio.blocks, strict=True):
            a = ab.self_attention(a, e_a, rope_a)
            v = vb.self_attention(v, e_v, rope_v)
            a_before = a  # video fuses with audio from before audio's cross-attention (Ovi order)
            a = ab.cross_and_ffn(a, e_a, ctx_a, mask_a, v, rope_a, rope_v)
            v = vb.cross_and_ffn(v, e_v, ctx_v, text_mask, a_before, rope_v, rope_a)
        out_v = self.unpatchify(self.video.output(v, e0_v), grid)
        return TwinOutput(video=out_v, audio=self.audio.output(a, e0_a))


register_model(TwinDiT.kind, TwinDiTConfig, TwinDiT)
