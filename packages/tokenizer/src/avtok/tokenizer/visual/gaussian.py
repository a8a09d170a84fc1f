"""AToken's 3D Gaussian decoder: a sparse voxel latent → 3D Gaussians (xyz, colour, scale, rotation, opacity).

The released ``3d_decode_gs.pt`` network (TRELLIS' structured-latent Gaussian decoder as AToken ships it):
``input_layer`` (no bias) + absolute sin/cos positions of the voxel (x, y, z); pre-norm blocks (RMSNorm,
no biases, no RoPE, no q/k norm) with **shifted-window attention** — windows of ``window`` voxels per
axis, shifted by ``window // 2`` on odd blocks, per batch item; a non-affine LayerNorm (eps 1e-5) and
``out_layer`` (with bias) giving ``num_gaussians`` Gaussians per voxel. Quirk kept for exactness: the
official kernel call soft-caps the attention logits at 30 (``30 * tanh(s / 30)``) unless every window
holds exactly ``window`` voxels. Rendering is not part of this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from avtok.train.transformer import TransformerConfig
from avtok.train.pretrained import register_model
from avtok.train.transformer import Block

__all__ = ["GaussianDecoderConfig", "GaussianDecoder", "Gaussians", "hammersley_offsets"]

# Output blocks in order: name, components per Gaussian. Each block is laid out (gaussian, component).
_LAYOUT = (("xyz", 3), ("features_dc", 3), ("scaling", 3), ("rotation", 4), ("opacity", 1))


@dataclass(kw_only=True)
class GaussianDecoderConfig:
    """Sizes and representation constants of AToken's Gaussian decoder (``configs/3d_decode_gs.yaml``)."""

    latent_dim: int = 768
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_hidden: int = 3072
    resolution: int = 64
    window: int = 8
    softcap: float = 30.0
    num_gaussians: int = 32
    voxel_size: float = 1.5
    perturb_offset: bool = True
    lr: dict[str, float] = field(
        default_factory=lambda: {
            "xyz": 1.0,
            "features_dc": 1.0,
            "scaling": 1.0,
            "rotation": 0.1,
            "opacity": 1.0,
        }
    )
    min_kernel_size: float = 9e-4
    scaling_bias: float = 4e-3
    opacity_bias: float = 0.1

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"GaussianDecoderConfig.dim={self.dim} is not divisible by heads={self.heads}")
        if set(self.lr) != {name for name, _ in _LAYOUT}:
            raise ValueError(
                f"GaussianDecoderConfig.lr needs keys {[n for n, _ in _LAYOUT]}, got {sorted(self.lr)}"
            )

    @property
    def out_channels(self) -> int:
        return self.num_gaussians * sum(n for _, n in _LAYOUT)

    @property
    def block(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_hidden=self.mlp_hidden,
            norm="rmsnorm",
            bias=False,
            qkv_bias=False,
            use_rope=False,
        )

    @classmethod
    def from_atoken(cls, model: dict[str, Any], source: str = "config") -> GaussianDecoderConfig:
        """The ``model`` section of the official ``3d_decode_gs.yaml``."""
        rep = model["representation_config"]
        checks = {
            "attn_mode": ("swin",),
            "pe_mode": ("ape",),
            "qk_rms_norm": (False,),
            "use_checkpoint": (False, True),
            "scaling_activation": ("softplus",),
        }
        for key, allowed in checks.items():
            value = rep.get(key) if key == "scaling_activation" else model.get(key, allowed[0])
            if value not in allowed:
                raise ValueError(f"{source}: {key}={value!r} is not supported (avtok implements {allowed})")
        heads = model.get("num_heads") or model["model_channels"] // model.get("num_head_channels", 64)
        lr = {k.lstrip("_"): float(v) for k, v in rep["lr"].items()}
        return cls(
            latent_dim=int(model["latent_channels"]),
            dim=int(model["model_channels"]),
            depth=int(model["num_blocks"]),
            heads=int(heads),
            mlp_hidden=int(model.get("mlp_channels", 3072)),
            resolution=int(model["resolution"]),
            window=int(model.get("window_size", 8)),
            num_gaussians=int(rep["num_gaussians"]),
            voxel_size=float(rep["voxel_size"]),
            perturb_offset=bool(rep["perturb_offset"]),
            lr=lr,
            min_kernel_size=float(rep["3d_filter_kernel_size"]),
            scaling_bias=float(rep["scaling_bias"]),
            opacity_bias=float(rep["opacity_bias"]),
        )


def _radical_inverse(i: int, base: int) -> float:
    out, f = 0.0, 1.0 / base
    while i > 0:
        out += f * (i % base)
        i //= base
        f /= base
    return out


def hammersley_offsets(n: int, voxel_size: float) -> Tensor:
    """``atanh((h_i * 2 - 1) / voxel_size)`` for the 3-D Hammersley points h_i = (i/n, φ_2(i), φ_3(i))."""
    pts = torch.tensor([[i / n, _radical_inverse(i, 2), _radical_inverse(i, 3)] for i in range(n)])
    return torch.atanh((pts.float() * 2 - 1) / voxel_size)  # (n, 3) float32


@dataclass(kw_only=True)
class Gaussians:
    """Gaussians of a batch, packed: M = Σ voxels x num_gaussians rows; ``batch_sizes`` (B,) splits them.

    ``*_raw`` are the stored parameters (TRELLIS ``Gaussian._xyz`` …); the properties are the activated ones.
    """

    out_feats: Tensor  # (N, out_channels) the network output per voxel
    xyz_raw: Tensor  # (M, 3) in [0, 1] grid units
    features_dc: Tensor  # (M, 1, 3)
    scaling_raw: Tensor  # (M, 3)
    rotation_raw: Tensor  # (M, 4)
    opacity_raw: Tensor  # (M, 1)
    batch_sizes: Tensor  # (B,) int64
    config: GaussianDecoderConfig

    @property
    def xyz(self) -> Tensor:  # aabb (-0.5, -0.5, -0.5, 1, 1, 1): centred unit cube
        return self.xyz_raw * 1.0 - 0.5

    @property
    def scaling(self) -> Tensor:
        bias = torch.tensor(self.config.scaling_bias)
        bias = bias + torch.log(-torch.expm1(-bias))  # inverse softplus, fp32
        s = F.softplus(self.scaling_raw + bias)
        return torch.sqrt(s.square() + self.config.min_kernel_size**2)

    @property
    def rotation(self) -> Tensor:
        return F.normalize(self.rotation_raw + self.rotation_raw.new_tensor([1.0, 0.0, 0.0, 0.0]), dim=-1)

    @property
    def opacity(self) -> Tensor:
        p = torch.tensor(self.config.opacity_bias)
        return torch.sigmoid(self.opacity_raw + torch.log(p / (1 - p)))


class GaussianDecoder(nn.Module):
    """``GaussianDecoder(cfg)(coords (N, 4) [batch, x, y, z], latents (N, latent_dim)) -> Gaussians``."""

    kind = "atoken-gaussian"

    def __init__(self, config: GaussianDecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.input_layer = nn.Linear(config.latent_dim, config.dim, bias=False)
        self.blocks = nn.ModuleList([Block(config.block) for _ in range(config.depth)])
        self.out_layer = nn.Linear(config.dim, config.out_channels)
        self.register_buffer(
            "offset_perturbation", hammersley_offsets(config.num_gaussians, config.voxel_size)
        )

    def positions(self, xyz: Tensor) -> Tensor:
        """(N, 3) voxel coords → (N, dim): per axis ``[sin(x f), cos(x f)]``, f = 10000^(-i/F), 0-padded."""
        n_freq = self.config.dim // 3 // 2
        freqs = 1.0 / 10000 ** (torch.arange(n_freq, dtype=torch.float32, device=xyz.device) / n_freq)
        ang = xyz.reshape(-1).float()[:, None] * freqs  # (N*3, F)
        emb = torch.cat([ang.sin(), ang.cos()], dim=-1).reshape(xyz.shape[0], -1)  # (N, 6F)
        return F.pad(emb, (0, self.config.dim - emb.shape[1]))

    def forward(self, coords: Tensor, latents: Tensor) -> Gaussians:
        if coords.ndim != 2 or coords.shape[1] != 4 or latents.shape[0] != coords.shape[0]:
            raise ValueError(
                f"coords {tuple(coords.shape)} / latents {tuple(latents.shape)}: expected "
                "(N, 4) [batch, x, y, z] voxel indices and (N, latent_dim) latents"
            )
        coords = coords.long()
        w = self.input_layer.weight
        h = self.input_layer(latents.to(w)) + self.positions(coords[:, 1:]).to(w)  # (N, D)
        for i, block in enumerate(self.blocks):
            h = self._windowed(block, h, coords, shift=self.config.window // 2 * (i % 2))
        h = F.layer_norm(h, h.shape[-1:])  # no affine, eps 1e-5
        return self.to_gaussians(coords, self.out_layer(h))

    def _windowed(self, block: Block, h: Tensor, coords: Tensor, *, shift: int) -> Tensor:
        """One block with attention inside each (shifted) window of each batch item."""
        cells = torch.div(coords[:, 1:] + shift, self.config.window, rounding_mode="floor")  # (N, 3)
        _, win = torch.unique(torch.cat([coords[:, :1], cells], dim=1), dim=0, return_inverse=True)  # (N,)
        order = torch.argsort(win, stable=True)
        counts = torch.bincount(win)  # (W,)
        softcap = None if bool((counts == self.config.window).all()) else self.config.softcap
        starts = torch.cumsum(counts, 0) - counts
        sorted_win = win[order]
        slot = torch.arange(len(order), device=h.device) - starts[sorted_win]  # position inside the window
        lmax = int(counts.max())
        out = torch.empty_like(h)
        chunk = max(1, (1 << 24) // (self.config.heads * lmax * lmax))  # bound the (W, H, L, L) scores
        for w0 in range(0, len(counts), chunk):
            sel = (sorted_win >= w0) & (sorted_win < w0 + chunk)
            rows, wins, slots = order[sel], sorted_win[sel] - w0, slot[sel]
            n_win = int(min(chunk, len(counts) - w0))
            x = h.new_zeros(n_win, lmax, h.shape[1])  # (W, L, D) zero-padded windows
            x[wins, slots] = h[rows]
            keep = torch.zeros(n_win, lmax, dtype=torch.bool, device=h.device)
            keep[wins, slots] = True
            pos = torch.zeros(lmax, 4, dtype=torch.long, device=h.device)  # unused: no RoPE
            y = block(x, pos, mask=keep[:, None, None, :], softcap=softcap)  # (W, L, D)
            out[rows] = y[wins, slots]
        return out

    def to_gaussians(self, coords: Tensor, feats: Tensor) -> Gaussians:
        """Network output (N, out_channels) → Gaussians (AToken's ``to_representation``)."""
        c, g = self.config, self.config.num_gaussians
        parts, start = {}, 0
        for name, n in _LAYOUT:
            parts[name] = feats[:, start : start + g * n].reshape(-1, g, n).float() * c.lr[name]  # (N, G, n)
            start += g * n
        offset = parts["xyz"]
        if c.perturb_offset:
            offset = offset + self.offset_perturbation
        centre = (coords[:, 1:].float() + 0.5) / c.resolution  # (N, 3)
        xyz = centre[:, None] + torch.tanh(offset) / c.resolution * 0.5 * c.voxel_size
        sizes = (
            torch.bincount(coords[:, 0], minlength=int(coords[:, 0].max()) + 1) * g
            if len(coords)
            else torch.zeros(0, dtype=torch.long)
        )
        return Gaussians(
            out_feats=feats,
            xyz_raw=xyz.flatten(0, 1),
            features_dc=parts["features_dc"].flatten(0, 1)[:, None],
            scaling_raw=parts["scaling"].flatten(0, 1),
            rotation_raw=parts["rotation"].flatten(0, 1),
            opacity_raw=parts["opacity"].flatten(0, 1),
            batch_sizes=sizes,
            config=c,
        )

    @classmethod
    def from_pretrained(cls, directory: str, *, device: str = "cpu") -> GaussianDecoder:
        from avtok.train.pretrained import from_pretrained

        model = from_pretrained(directory, device=device)
        if not isinstance(model, cls):
            raise ValueError(f"{directory}: holds a {type(model).__name__}, not a GaussianDecoder")
        return model


register_model(GaussianDecoder.kind, GaussianDecoderConfig, GaussianDecoder)
