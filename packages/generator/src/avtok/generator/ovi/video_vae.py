"""Ovi's video autoencoder: the Wan2.2 VAE (``Wan2.2_VAE.pth``) through diffusers' ``AutoencoderKLWan``.

Wan2.2's VAE (48 latent channels, 2x2 patchify then 8x8 spatial and 4x causal temporal compression,
16x16x4 in all) is ``AutoencoderKLWan(is_residual=True, patch_size=2, ...)`` in diffusers 0.42.1,
which reproduces Ovi's ``vae2_2.py`` bit for bit once the checkpoint's keys are renamed
(:func:`wan22_to_diffusers_keys`; the converter shipped in the diffusers wheel is Wan2.1's and cannot
load it). Around the model, Ovi normalises the latent with 48 per-channel constants that are not in
the checkpoint: ``latent = (mu - mean) * inv_std`` with ``inv_std = 1 / std`` in float32, and before
decoding ``z = latent / inv_std + mean``. Decoded frames are clamped to [-1, 1] and written as
``uint8((x + 1) / 2 * 255)`` (truncation).

Shapes: video (B, 3, T, H, W) in [-1, 1], T = 1 + 4k, H and W multiples of 16 -> latent
(B, 48, 1 + k, H / 16, W / 16); a latent with F frames decodes to 1 + 4 (F - 1) frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from avtok.generator.ovi.checkpoints import load_exact, read_state_dict

__all__ = [
    "WAN22_LATENT_MEAN",
    "WAN22_LATENT_STD",
    "WAN_VAE_PRESETS",
    "WanVAEConfig",
    "WanVideoVAE",
    "frames_to_uint8",
    "load_wan_vae",
    "wan22_to_diffusers_keys",
    "wan_vae_config_from_state_dict",
]

# Wan2_2_VAE's per-channel statistics of mu (Ovi's vae2_2.py); not stored in Wan2.2_VAE.pth
WAN22_LATENT_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)  # fmt: skip
WAN22_LATENT_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)  # fmt: skip


@dataclass(kw_only=True, frozen=True)
class WanVAEConfig:
    """Wan2.2 VAE sizes (Ovi: ``c_dim`` 160, ``dec_dim`` 256); the structure is fixed by ``diffusers_kwargs``."""

    base_dim: int = 160
    decoder_base_dim: int = 256
    z_dim: int = 48
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)

    def diffusers_kwargs(self) -> dict[str, object]:
        return dict(
            base_dim=self.base_dim,
            decoder_base_dim=self.decoder_base_dim,
            z_dim=self.z_dim,
            dim_mult=list(self.dim_mult),
            num_res_blocks=self.num_res_blocks,
            attn_scales=[],
            temperal_downsample=list(self.temporal_downsample),
            dropout=0.0,
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_temporal=4,
            scale_factor_spatial=16,
        )


WAN_VAE_PRESETS: dict[str, WanVAEConfig] = {
    "wan2.2": WanVAEConfig(),  # Ovi's (Wan2.2_VAE.pth)
    "tiny": WanVAEConfig(base_dim=4, decoder_base_dim=6),  # tests
}

# Wan2.2 (vae2_2.py) -> diffusers AutoencoderKLWan, applied in order to each key; see wan22_to_diffusers_keys
_RESIDUAL_PARTS = {"residual.0.": "norm1.", "residual.2.": "conv1.", "residual.3.": "norm2.",
                   "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}  # fmt: skip
_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^conv1\.", "quant_conv."),
    (r"^conv2\.", "post_quant_conv."),
    (r"^(encoder|decoder)\.conv1\.", r"\1.conv_in."),
    (r"^(encoder|decoder)\.head\.0\.", r"\1.norm_out."),
    (r"^(encoder|decoder)\.head\.2\.", r"\1.conv_out."),
    (r"^(encoder|decoder)\.middle\.0\.", r"\1.mid_block.resnets.0."),
    (r"^(encoder|decoder)\.middle\.1\.", r"\1.mid_block.attentions.0."),
    (r"^(encoder|decoder)\.middle\.2\.", r"\1.mid_block.resnets.1."),
    # the resampler is the last child of a down / up block: the one holding resample / time_conv
    (
        r"^encoder\.downsamples\.(\d+)\.downsamples\.\d+\.(resample|time_conv)",
        r"encoder.down_blocks.\1.downsampler.\2",
    ),
    (
        r"^decoder\.upsamples\.(\d+)\.upsamples\.\d+\.(resample|time_conv)",
        r"decoder.up_blocks.\1.upsampler.\2",
    ),
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.(\d+)\.", r"decoder.up_blocks.\1.resnets.\2."),
)


def _rename(key: str) -> str:
    for pattern, repl in _KEY_RULES:
        key = re.sub(pattern, repl, key)
    if ".resnets." in key:
        for old, new in _RESIDUAL_PARTS.items():
            key = key.replace(f".{old}", f".{new}")
    return key


def wan22_to_diffusers_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a ``Wan2.2_VAE.pth`` state dict (Wan's ``WanVAE_`` layout) to ``AutoencoderKLWan``'s; tensors unchanged."""
    if any(k.startswith(("encoder.down_blocks.", "decoder.up_blocks.", "quant_conv.")) for k in state):
        return dict(state)  # already in diffusers' layout
    return {_rename(k): v for k, v in state.items()}


def wan_vae_config_from_state_dict(state: dict[str, Tensor]) -> WanVAEConfig:
    """Encoder and decoder widths of a Wan2.2 VAE state dict (either layout)."""
    state = wan22_to_diffusers_keys(state)
    try:
        base = state["encoder.conv_in.weight"].shape[0]  # (C, 12, 3, 3, 3)
        decoder_base = state["decoder.conv_out.weight"].shape[1]  # (12, D, 3, 3, 3)
        z_dim = state["decoder.conv_in.weight"].shape[1]  # (4D, z, 3, 3, 3)
    except KeyError as err:
        raise ValueError(f"not a Wan2.2 VAE state dict: no {err}; pass Wan2.2_VAE.pth") from err
    return WanVAEConfig(base_dim=base, decoder_base_dim=decoder_base, z_dim=z_dim)


def frames_to_uint8(video: Tensor) -> Tensor:
    """(3, T, H, W) float in [-1, 1] -> (T, H, W, 3) uint8, as Ovi writes its mp4 (clamp, ``(x + 1) / 2 * 255``, truncate)."""
    return ((video.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).permute(1, 2, 3, 0).contiguous()


class WanVideoVAE(nn.Module):
    """Wan2.2 VAE with Ovi's latent normalisation; ``model`` is the diffusers ``AutoencoderKLWan``."""

    def __init__(
        self,
        cfg: WanVAEConfig = WanVAEConfig(),
        *,
        latents_mean: tuple[float, ...] = WAN22_LATENT_MEAN,
        latents_std: tuple[float, ...] = WAN22_LATENT_STD,
    ) -> None:
        super().__init__()
        try:
            from diffusers import AutoencoderKLWan
        except ImportError as err:
            raise ImportError("the Wan2.2 video VAE needs `pip install diffusers==0.42.1`") from err
        if len(latents_mean) != cfg.z_dim or len(latents_std) != cfg.z_dim:
            raise ValueError(f"WanVideoVAE: need {cfg.z_dim} latent mean/std constants, got "
                             f"{len(latents_mean)} / {len(latents_std)}")  # fmt: skip
        self.cfg = cfg
        self.model = AutoencoderKLWan(**cfg.diffusers_kwargs())
        std = torch.tensor(latents_std, dtype=torch.float32)
        # not learned and not in the checkpoint: kept out of the state dict
        self.register_buffer(
            "latents_mean", torch.tensor(latents_mean, dtype=torch.float32), persistent=False
        )
        self.register_buffer("latents_inv_std", 1.0 / std, persistent=False)  # float32 reciprocal, as Ovi

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return self.latents_mean.view(shape).to(x), self.latents_inv_std.view(shape).to(x)

    def _check_video(self, video: Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != 3 or video.shape[-1] % 16 or video.shape[-2] % 16:
            raise ValueError(
                f"video of shape {tuple(video.shape)}: expected (B, 3, T, H, W) in [-1, 1] with H, W "
                "multiples of 16; resize or crop the frames (Ovi uses multiples of 32)"
            )

    def encode_posterior(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, T, H, W) -> unnormalised (mu, logvar) each (B, 48, 1 + (T - 1) // 4, H / 16, W / 16); logvar clamped."""
        self._check_video(video)
        dist = self.model.encode(video).latent_dist
        return dist.mean, dist.logvar

    def encode(self, video: Tensor) -> Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> the DiT's normalised latent (B, 48, F, H / 16, W / 16) (Ovi's ``wrapped_encode``)."""
        mu, _ = self.encode_posterior(video)
        mean, inv_std = self._stats(mu)
        return (mu - mean) * inv_std

    def decode(self, latent: Tensor, *, clamp: bool = True) -> Tensor:
        """Normalised latent (B, 48, F, h, w) -> video (B, 3, 1 + 4 (F - 1), 16 h, 16 w), clamped to [-1, 1] unless asked.

        Causal decoding one latent frame at a time through diffusers' decoder and its conv cache (as
        ``AutoencoderKLWan.decode``, which always clamps).
        """
        from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, unpatchify

        if latent.ndim != 5 or latent.shape[1] != self.cfg.z_dim:
            raise ValueError(
                f"latent of shape {tuple(latent.shape)}: expected (B, {self.cfg.z_dim}, F, h, w)"
            )
        mean, inv_std = self._stats(latent)
        x = self.model.post_quant_conv(latent / inv_std + mean)
        decoder = self.model.decoder
        cache: list[Tensor | None] = [None] * sum(isinstance(m, WanCausalConv3d) for m in decoder.modules())
        frames = []
        for i in range(x.shape[2]):
            frames.append(decoder(x[:, :, i : i + 1], feat_cache=cache, feat_idx=[0], first_chunk=i == 0))
        out = unpatchify(torch.cat(frames, dim=2), patch_size=2)  # (B, 3, T, H, W)
        return out.clamp(-1.0, 1.0) if clamp else out


def load_wan_vae(
    path: str | Path | dict[str, Tensor],
    *,
    config: WanVAEConfig | None = None,
    latents_mean: tuple[float, ...] = WAN22_LATENT_MEAN,
    latents_std: tuple[float, ...] = WAN22_LATENT_STD,
) -> WanVideoVAE:
    """Ovi's video VAE from ``Wan2.2_VAE.pth`` (or safetensors / a state dict, Wan or diffusers layout), in eval mode."""
    source = "state dict" if isinstance(path, dict) else str(path)
    state = dict(path) if isinstance(path, dict) else read_state_dict(path)
    cfg = config or wan_vae_config_from_state_dict(state)
    vae = WanVideoVAE(cfg, latents_mean=latents_mean, latents_std=latents_std)
    load_exact(vae.model, {k: v.float() for k, v in wan22_to_diffusers_keys(state).items()}, source=source)
    return vae.eval().requires_grad_(False)
