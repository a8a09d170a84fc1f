"""Gram-matrix (texture) loss, AToken eq. 5: ``sum_l ||G(Phi_l(a)) - G(Phi_l(b))||_F^2``.

Normalisation (documented element counts): for one layer with features ``F`` (B, C, N), ``N = H*W`` (or
``L``), ``gram_matrix(F) = F F^T / (C * N)`` (Gatys / Johnson style: independent of resolution), and
the layer's loss is the mean over the ``B * C * C`` Gram entries of the squared difference; the
returned loss is the sum over layers. Features are upcast to fp32 (Gram sums lose too much in bf16);
fp64 stays fp64.

Backends (``backend=``):

* ``"torch"`` — the reference: two ``bmm`` per layer, autograd backward (``F F^T`` has both operands
  requiring grad, so autograd runs two more ``bmm``: 4 full products per layer).
* ``"sym"`` — torch ops on any device exploiting symmetry: the difference ``D = Fa Fa^T - Fb Fb^T`` is
  built from the upper block-triangle only (block rows, ``(k+1)/2k`` of the FLOPs) and the hand-written
  backward is a single product ``dL/dFa = 4 s^2 / (B C^2) * D @ Fa`` (D symmetric).
* ``"blas"`` — CPU: BLAS ``ssyrk/dsyrk`` (scipy, on numpy views: rank-k update, half a gemm) for D,
  same backward. ``"cupy"`` — GPU: cuBLAS ``syrk`` through CuPy, same backward.

Reference cost 8 C^2 N FLOPs per layer and batch item vs ~4 for syrk (2x is the limit).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from avtok.kernels.backends import has_module, resolve_backend

__all__ = ["gram_loss", "gram_loss_reference", "gram_matrix", "symmetric_difference"]

_BACKENDS = ("torch", "sym", "blas", "cupy")
DiffFn = Callable[[Tensor, Tensor], Tensor]


def _as_bcn(f: Tensor, name: str) -> Tensor:
    if not isinstance(f, Tensor) or not f.is_floating_point() or f.ndim < 3:
        raise ValueError(f"{name}: expected a float tensor (B, C, H, W) or (B, C, L), got "
                         f"{getattr(f, 'shape', type(f))}; flatten extra dims into the spatial axes")
    f = f if f.dtype == torch.float64 else f.float()  # fp32 (or fp64) accumulation
    return f.flatten(2)  # (B, C, N)


def gram_matrix(f: Tensor) -> Tensor:
    """(B, C, N) (or (B, C, H, W)) -> (B, C, C) Gram matrix ``F F^T / (C * N)`` in fp32."""
    f = _as_bcn(f, "gram_matrix")
    _, c, n = f.shape
    return torch.bmm(f, f.transpose(1, 2)) / (c * n)


def gram_loss_reference(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor]) -> Tensor:
    """Plain-torch Gram loss (the test oracle)."""
    total = None
    for fa, fb in _pairs(feats_a, feats_b):
        layer = (gram_matrix(fa) - gram_matrix(fb)).square().mean()
        total = layer if total is None else total + layer
    return total


def symmetric_difference(fa: Tensor, fb: Tensor, *, block: int | None = None) -> Tensor:
    """``fa fa^T - fb fb^T`` (B, C, C) from block rows of the upper triangle, mirrored (torch ops)."""
    b, c, _ = fa.shape
    block = block or max(64, -(-c // 8))
    d = fa.new_empty(b, c, c)
    for start in range(0, c, block):
        stop = min(c, start + block)
        blk = torch.bmm(fa[:, start:stop], fa[:, start:].transpose(1, 2))  # (B, c_i, C - start)
        blk.baddbmm_(fb[:, start:stop], fb[:, start:].transpose(1, 2), alpha=-1.0)
        d[:, start:stop, stop:] = blk[:, :, stop - start:]
        diag = blk[:, :, : stop - start]  # mirror its upper triangle: D comes out exactly symmetric
        d[:, start:stop, start:stop] = diag.triu() + diag.triu(1).transpose(1, 2)
        d[:, stop:, start:stop] = blk[:, :, stop - start:].transpose(1, 2)  # mirror below the blocks
    return d


class _GramDiffLoss(torch.autograd.Function):
    """Loss from a symmetric difference ``D``; backward ``dFa = 4 s^2/(B C^2) D Fa`` (one product)."""

    @staticmethod
    def forward(ctx, fa: Tensor, fb: Tensor, diff_fn: DiffFn) -> Tensor:  # fa, fb (B, C, N) fp32
        b, c, n = fa.shape
        d = diff_fn(fa.detach(), fb.detach())  # (B, C, C) unnormalised
        scale = 1.0 / (c * n)
        ctx.save_for_backward(fa, fb, d)
        ctx.coef = 4.0 * scale * scale / (b * c * c)
        return (d.square().sum() * (scale * scale / (b * c * c))).reshape(())

    @staticmethod
    def backward(ctx, grad: Tensor):
        fa, fb, d = ctx.saved_tensors
        d = d * (grad * ctx.coef)  # scale the (C, C) factor, not the (C, N) products
        grad_a = torch.bmm(d, fa) if ctx.needs_input_grad[0] else None  # (B, C, N)
        grad_b = torch.bmm(d, fb).neg_() if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None


def _pairs(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    if isinstance(feats_a, Tensor) or isinstance(feats_b, Tensor):
        raise TypeError("gram_loss: pass lists of feature maps, e.g. gram_loss([fa], [fb])")
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(f"gram_loss: got {len(feats_a)} and {len(feats_b)} feature maps; pass the same "
                         "non-zero number of layers for both inputs")
    pairs = []
    for i, (fa, fb) in enumerate(zip(feats_a, feats_b, strict=True)):
        fa, fb = _as_bcn(fa, f"gram_loss layer {i} (a)"), _as_bcn(fb, f"gram_loss layer {i} (b)")
        if fa.shape != fb.shape:
            raise ValueError(f"gram_loss layer {i}: shapes {tuple(fa.shape)} and {tuple(fb.shape)} differ; "
                             "both inputs must go through the same network at the same resolution")
        pairs.append((fa, fb))
    return pairs


def _diff_fn(name: str) -> DiffFn:
    if name == "sym":
        return symmetric_difference
    from avtok.kernels import gram_syrk

    return gram_syrk.syrk_difference_blas if name == "blas" else gram_syrk.syrk_difference_cupy


def _usable(device: torch.device) -> dict[str, bool]:
    if device.type == "cpu":
        return {"sym": True, "blas": has_module("scipy")}
    if device.type == "cuda":
        return {"sym": True, "cupy": has_module("cupy")}
    return {"sym": True}


# What "auto" tries, per device, fastest first (measured by tools/bench_kernels.py).
AUTO_ORDER = {"cpu": ("blas", "sym"), "cuda": ("cupy", "sym")}


def gram_loss(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor], *, backend: str = "auto") -> Tensor:
    """Scalar Gram loss summed over layers (see the module docstring for normalisation/backends)."""
    pairs = _pairs(feats_a, feats_b)
    device = pairs[0][0].device
    name = resolve_backend("gram_loss", backend, supported=_BACKENDS,
                           auto_order=AUTO_ORDER.get(device.type, ("sym",)), usable=_usable(device))
    if name == "torch":
        return gram_loss_reference(feats_a, feats_b)
    try:
        return _fast_loss(pairs, _diff_fn(name))
    except Exception as err:  # noqa: BLE001 — under "auto" a CuPy/driver problem falls back to "sym"
        if backend != "auto" or name == "sym":
            raise
        _warn_fallback(name, f"{type(err).__name__}: {err}")
        return _fast_loss(pairs, symmetric_difference)


def _fast_loss(pairs: list[tuple[Tensor, Tensor]], diff_fn: DiffFn) -> Tensor:
    total = None
    for fa, fb in pairs:
        layer = _GramDiffLoss.apply(fa.contiguous(), fb.contiguous(), diff_fn)
        total = layer if total is None else total + layer
    return total


@functools.cache
def _warn_fallback(name: str, error: str) -> None:  # once per distinct error
    warnings.warn(f"gram_loss: backend {name!r} failed ({error}); falling back to backend='sym'. Pass "
                  f"backend={name!r} to see the full error.", RuntimeWarning, stacklevel=3)
