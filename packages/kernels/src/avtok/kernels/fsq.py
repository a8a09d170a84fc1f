"""Finite scalar quantization (FSQ, Mentzer et al. 2023) as used by AToken's discrete stage.

Per dimension with ``L`` levels (``eps = 1e-3``, as in the public FSQ code)::

    h = (L - 1) * (1 + eps) / 2          o = 0.5 if L is even else 0       s = atanh(o / h)
    bounded = tanh(z + s) * h - o        q = round(bounded)                code = q / (L // 2)

``q`` takes exactly ``L`` integer values, so ``code`` lies in [-1, 1]; ``digit = q + L // 2`` in
[0, L). A latent of ``num_groups * len(levels)`` dims is split into groups (group ``g`` owns dims
``[g * d, (g + 1) * d)``); each group's digits pack into one int32 index, mixed radix with the first
dim least significant (``basis = cumprod([1, L_0, L_1, ...])``, the convention of the public FSQ code).

Precision: quantization always runs in fp32 whatever the input dtype (fp64 inputs are rounded to fp32
first); codes come back in the input dtype with a straight-through gradient. The reference below takes
the rounding decision in float64, so it is the exact mathematical decision for every fp32 input. The fast
backends reach the same decision without tanh: ``round(bounded)`` passes ``k + 1/2`` exactly when
``z > atanh((k + 1/2 + o) / h) - s``; for fp32 ``z`` that is ``z >= T`` with ``T`` the threshold rounded
*up* to the next fp32, so ``L - 1`` comparisons give the exact answer (tanh only appears in backward).
Non-finite inputs: ``+-inf`` saturate to the outer codes on every backend; NaN is undefined.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from avtok.kernels.backends import has_module, resolve_backend
from avtok.kernels.fsq_tables import FSQTables, fsq_tables

__all__ = [
    "FSQ",
    "FSQOutput",
    "FSQTables",
    "codes_to_indices",
    "fsq",
    "fsq_reference",
    "fsq_tables",
    "indices_to_codes",
]

_BACKENDS = ("torch", "numba", "cupy")


@dataclass(kw_only=True)
class FSQOutput:
    """Result of FSQ: ``codes`` (..., dim) in [-1, 1] (input dtype, straight-through gradient) and
    ``indices`` (..., G) int32 in [0, prod(levels))."""

    codes: Tensor
    indices: Tensor


def _check_latent(z: Tensor, tables: FSQTables, num_groups: int) -> None:
    if not isinstance(z, Tensor) or not z.is_floating_point():
        raise TypeError(f"fsq: z must be a floating-point tensor, got {getattr(z, 'dtype', type(z))}")
    if num_groups < 1 or z.ndim < 1 or z.shape[-1] != num_groups * tables.dim:
        raise ValueError(
            f"fsq: z has last dim {z.shape[-1] if z.ndim else None}, expected num_groups * len(levels) = "
            f"{num_groups} * {tables.dim}; reshape z or pass matching levels/num_groups"
        )


def _as_f64(values: np.ndarray, device: torch.device) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float64, device=device)


def fsq_reference(z: Tensor, levels: Sequence[int], *, num_groups: int = 1) -> FSQOutput:
    """Plain-torch FSQ: the test oracle (float64 rounding decision, autograd straight-through)."""
    tables = fsq_tables(tuple(levels))
    _check_latent(z, tables, num_groups)
    dev = z.device
    z64 = z.float().double().unflatten(-1, (num_groups, tables.dim))  # (..., G, d)
    bounded = torch.tanh(z64 + _as_f64(tables.shift, dev)) * _as_f64(tables.half_l, dev)
    bounded = bounded - _as_f64(tables.offset, dev)
    q = torch.round(bounded)
    ste = bounded + (q - bounded).detach()  # exact q in value (Sterbenz), identity gradient
    half_width32 = torch.as_tensor(tables.half_width, dtype=torch.float32, device=dev)
    codes = (ste.float() / half_width32).to(z.dtype).flatten(-2)  # (..., dim), fp32 division
    digits = q.long() + torch.as_tensor(tables.half_width, device=dev)
    indices = (digits * torch.as_tensor(tables.basis, device=dev)).sum(-1).to(torch.int32)  # (..., G)
    return FSQOutput(codes=codes, indices=indices)


def indices_to_codes(
    indices: Tensor, levels: Sequence[int], *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """(..., G) integer indices -> (..., G * len(levels)) codes in [-1, 1]; exact inverse of packing."""
    tables = fsq_tables(tuple(levels))
    if indices.is_floating_point() or indices.is_complex():
        raise TypeError(f"indices_to_codes: indices must be an integer tensor, got {indices.dtype}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= tables.codebook_size):
        raise ValueError(f"indices_to_codes: indices must lie in [0, {tables.codebook_size}) for "
                         f"levels={list(tables.levels)}; got [{int(indices.min())}, {int(indices.max())}]")
    dev = indices.device
    idx = indices.long().unsqueeze(-1)  # (..., G, 1)
    lv = torch.as_tensor(tables.levels, device=dev)
    digits = (idx // torch.as_tensor(tables.basis, device=dev)) % lv  # (..., G, d)
    table = torch.as_tensor(tables.code_table, device=dev)  # (d, Lmax)
    codes = table[torch.arange(tables.dim, device=dev), digits]  # (..., G, d)
    return codes.to(dtype).flatten(-2)


def codes_to_indices(codes: Tensor, levels: Sequence[int], *, num_groups: int | None = None) -> Tensor:
    """(..., G * len(levels)) codes on the FSQ grid -> (..., G) int32 indices (exact inverse)."""
    tables = fsq_tables(tuple(levels))
    if codes.shape[-1] % tables.dim:
        raise ValueError(f"codes_to_indices: last dim {codes.shape[-1]} is not a multiple of "
                         f"len(levels)={tables.dim}; pass codes produced by fsq with these levels")
    groups = codes.shape[-1] // tables.dim if num_groups is None else num_groups
    dev = codes.device
    half_width = torch.as_tensor(tables.half_width, device=dev)
    scaled = codes.float().double().unflatten(-1, (groups, tables.dim)) * half_width  # (..., G, d)
    digits = torch.round(scaled).long() + half_width
    lv = torch.as_tensor(tables.levels, device=dev)
    if bool(((digits < 0) | (digits >= lv)).any()):
        raise ValueError("codes_to_indices: codes lie outside [-1, 1] for these levels; pass FSQ codes")
    return (digits * torch.as_tensor(tables.basis, device=dev)).sum(-1).to(torch.int32)


def _usable(z: Tensor) -> dict[str, bool]:
    if z.device.type == "cpu":
        return {"numba": has_module("numba")}
    if z.device.type == "cuda":
        return {"numba": has_module("numba.cuda") or has_module("numba_cuda"), "cupy": has_module("cupy")}
    return {}


def fsq(
    z: Tensor, levels: Sequence[int], *, num_groups: int = 1, backend: str = "auto"
) -> FSQOutput:
    """Quantize ``z`` (..., num_groups * len(levels)) with FSQ; see the module docstring.

    ``backend``: ``"torch"`` (reference), ``"numba"`` (fused threshold kernels: ``@njit`` on CPU,
    ``numba.cuda`` on GPU), ``"cupy"`` (CUDA RawKernels), ``"auto"`` (numba, then cupy, then torch).
    """
    tables = fsq_tables(tuple(levels))
    _check_latent(z, tables, num_groups)
    name = resolve_backend("fsq", backend, supported=_BACKENDS, auto_order=("numba", "cupy"),
                           usable=_usable(z))
    if name == "torch":
        return fsq_reference(z, tables.levels, num_groups=num_groups)
    if name == "numba" and z.device.type == "cpu":
        from avtok.kernels.fsq_numba import fsq_numba

        codes, indices = fsq_numba(z, tables, num_groups)
        return FSQOutput(codes=codes, indices=indices)
    try:
        codes, indices = _fsq_gpu(name, z, tables, num_groups)
    except Exception as err:  # noqa: BLE001 — a GPU toolchain problem must not stop training under "auto"
        if backend != "auto":
            raise
        _warn_gpu_fallback(name, f"{type(err).__name__}: {err}")
        return fsq_reference(z, tables.levels, num_groups=num_groups)
    return FSQOutput(codes=codes, indices=indices)


def _fsq_gpu(name: str, z: Tensor, tables: FSQTables, num_groups: int) -> tuple[Tensor, Tensor]:
    if name == "numba":
        from avtok.kernels.fsq_cuda import fsq_cuda

        return fsq_cuda(z, tables, num_groups)
    from avtok.kernels.fsq_cupy import fsq_cupy

    return fsq_cupy(z, tables, num_groups)


@functools.cache
def _warn_gpu_fallback(name: str, error: str) -> None:  # once per distinct error
    warnings.warn(f"fsq: GPU backend {name!r} failed ({error}); falling back to the torch reference. "
                  f"Pass backend={name!r} to see the full error, or backend='torch' to silence this.",
                  RuntimeWarning, stacklevel=3)


class FSQ(nn.Module):
    """FSQ layer: ``num_groups`` groups of ``len(levels)`` dims, one index per group.

    AToken's discrete stage is the default: 8 groups x 6 dims x 4 levels = 48 dims, 4096 codes/group.
    """

    def __init__(self, levels: Sequence[int] = (4,) * 6, *, num_groups: int = 8, backend: str = "auto"):
        super().__init__()
        self.tables = fsq_tables(tuple(levels))
        if num_groups < 1:
            raise ValueError(f"FSQ: num_groups={num_groups} must be >= 1")
        self.levels = self.tables.levels
        self.num_groups = num_groups
        self.dim = num_groups * self.tables.dim
        self.codebook_size = self.tables.codebook_size
        self.backend = backend

    def forward(self, z: Tensor) -> FSQOutput:
        return fsq(z, self.levels, num_groups=self.num_groups, backend=self.backend)

    def indices_to_codes(self, indices: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
        if indices.shape[-1] != self.num_groups:
            raise ValueError(f"FSQ.indices_to_codes: last dim {indices.shape[-1]} != num_groups "
                             f"{self.num_groups}")
        return indices_to_codes(indices, self.levels, dtype=dtype)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        if codes.shape[-1] != self.dim:
            raise ValueError(f"FSQ.codes_to_indices: last dim {codes.shape[-1]} != dim {self.dim}")
        return codes_to_indices(codes, self.levels, num_groups=self.num_groups)

    def extra_repr(self) -> str:
        return f"levels={list(self.levels)}, num_groups={self.num_groups}, backend={self.backend!r}"
