"""N-D rotary position embeddings (1D text/audio, 3D (t, h, w) video, 4D (t, x, y, z) AToken).

The rotated band ``x[..., start_dim : start_dim + sum(axes_dims)]`` is split into consecutive per-axis
sub-bands (axis 0 first). Within axis ``a`` (``d_a`` dims) pairs are INTERLEAVED — ``(x[2i], x[2i+1])``
is rotated by ``coord_a * scale_a * theta_a ** (-2i / d_a)`` — the complex-number convention of
Wan/Ovi (``view_as_complex`` on ``(..., D/2, 2)``), so their checkpoints line up without permuting
weights. Dims outside the band pass through untouched (Ovi rotates only audio's temporal band).

``scale_per_axis`` multiplies an axis's frequencies, i.e. stretches its coordinate: Ovi scales audio's
temporal axis by ``video latent frames / audio tokens`` (31/157 for 5 s) so both towers share one
temporal rate. Angles are formed in float64 (large coordinates keep their precision), cos/sin in fp32,
and the rotation runs in fp32 before casting back to ``x``'s dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["RopeND", "rope_angles", "rope_frequencies", "rope_nd"]


def _check_axes(axes_dims: Sequence[int], scale_per_axis: Sequence[float] | None,
                theta: float | Sequence[float]) -> tuple[list[float], list[float]]:
    if not axes_dims or any(int(d) <= 0 or int(d) % 2 for d in axes_dims):
        raise ValueError(f"rope: axes_dims={list(axes_dims)} must be positive even ints (one per axis)")
    scales = [1.0] * len(axes_dims) if scale_per_axis is None else [float(s) for s in scale_per_axis]
    thetas = [float(theta)] * len(axes_dims) if isinstance(theta, (int, float)) else [float(t) for t in theta]
    if len(scales) != len(axes_dims) or len(thetas) != len(axes_dims):
        raise ValueError(f"rope: scale_per_axis={scale_per_axis} / theta={theta} must give one value per "
                         f"axis ({len(axes_dims)} axes)")
    return scales, thetas


def rope_frequencies(
    axes_dims: Sequence[int], *, theta: float | Sequence[float] = 10000.0,
    scale_per_axis: Sequence[float] | None = None, device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Inverse frequencies (P,) float64 and the axis (P,) int64 of each rotated pair, P = sum(dims)/2."""
    scales, thetas = _check_axes(axes_dims, scale_per_axis, theta)
    freqs, axes = [], []
    for a, (dim, scale, th) in enumerate(zip(axes_dims, scales, thetas, strict=True)):
        exponent = torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim
        freqs.append(scale * th ** (-exponent))
        axes.append(torch.full((dim // 2,), a, dtype=torch.int64, device=device))
    return torch.cat(freqs), torch.cat(axes)


def rope_angles(coords: Tensor, inv_freq: Tensor, axis_of_pair: Tensor) -> Tensor:
    """coords (..., L, A) -> rotation angles (..., L, P) float64."""
    return coords.double()[..., axis_of_pair.to(coords.device)] * inv_freq.to(coords.device)


def _rotate(x: Tensor, angles: Tensor, start_dim: int) -> Tensor:
    """Rotate interleaved pairs of x[..., start : start + 2P] by angles (B or 1, L, P)."""
    pairs = angles.shape[-1]
    stop = start_dim + 2 * pairs
    if stop > x.shape[-1]:
        raise ValueError(f"rope: band [{start_dim}, {stop}) exceeds head dim {x.shape[-1]}; "
                         "lower start_dim or axes_dims")
    cos, sin = angles.cos().float().unsqueeze(-3), angles.sin().float().unsqueeze(-3)  # (B|1, 1, L, P)
    band = x[..., start_dim:stop].float().unflatten(-1, (pairs, 2))  # (B, H, L, P, 2)
    x0, x1 = band[..., 0], band[..., 1]
    rotated = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2).to(x.dtype)
    return torch.cat((x[..., :start_dim], rotated, x[..., stop:]), dim=-1)


def _check_coords(x: Tensor, coords: Tensor, axes: int) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"rope_nd: x must be (B, H, L, D), got {tuple(x.shape)}")
    if coords.ndim == 2:
        coords = coords.unsqueeze(0)  # (1, L, A)
    if coords.ndim != 3 or coords.shape[-1] != axes or coords.shape[-2] != x.shape[2] \
            or coords.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"rope_nd: coords {tuple(coords.shape)} must be (B, L, A) or (L, A) with L="
                         f"{x.shape[2]} and A=len(axes_dims)={axes}")
    return coords


def rope_nd(
    x: Tensor, coords: Tensor, *, axes_dims: Sequence[int], theta: float | Sequence[float] = 10000.0,
    scale_per_axis: Sequence[float] | None = None, start_dim: int = 0,
) -> Tensor:
    """Apply N-D RoPE to x (B, H, L, D) at coords (B, L, A) or (L, A); see the module docstring."""
    coords = _check_coords(x, coords, len(axes_dims))
    inv_freq, axis = rope_frequencies(axes_dims, theta=theta, scale_per_axis=scale_per_axis,
                                      device=x.device)
    return _rotate(x, rope_angles(coords, inv_freq, axis), start_dim)


class RopeND(nn.Module):
    """``rope_nd`` with the inverse frequencies computed once and cached per device.

    They are kept out of the module's buffers on purpose: ``module.half()`` / ``.to(bfloat16)`` would
    otherwise cast the float64 frequencies and wreck the angles of large coordinates.
    """

    def __init__(self, axes_dims: Sequence[int], *, theta: float | Sequence[float] = 10000.0,
                 scale_per_axis: Sequence[float] | None = None, start_dim: int = 0):
        super().__init__()
        self.axes_dims = tuple(int(d) for d in axes_dims)
        self.start_dim = int(start_dim)
        inv_freq, axis = rope_frequencies(self.axes_dims, theta=theta, scale_per_axis=scale_per_axis)
        self._tables: dict[torch.device, tuple[Tensor, Tensor]] = {inv_freq.device: (inv_freq, axis)}

    def frequencies(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(P,) float64 inverse frequencies and (P,) axis ids on ``device``."""
        if device not in self._tables:
            inv_freq, axis = next(iter(self._tables.values()))
            self._tables[device] = (inv_freq.to(device), axis.to(device))
        return self._tables[device]

    def forward(self, x: Tensor, coords: Tensor) -> Tensor:
        coords = _check_coords(x, coords, len(self.axes_dims))
        inv_freq, axis = self.frequencies(coords.device)
        return _rotate(x, rope_angles(coords, inv_freq, axis), self.start_dim)

    def extra_repr(self) -> str:
        return f"axes_dims={self.axes_dims}, start_dim={self.start_dim}"
