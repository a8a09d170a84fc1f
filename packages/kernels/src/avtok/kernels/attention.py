"""Attention dispatch: torch SDPA, FlexAttention and flash-attn behind one function.

``attention(q, k, v, mask=..., cu_seqlens=..., causal=...)`` with q (B, H, Lq, D), k/v (B, H, Lk, D).

* ``causal`` aligns the query block to the END of the keys (flash-attn's convention, what KV-cache
  decoding needs): query ``i`` sees key ``j`` iff ``j <= i + Lk - Lq``. ``Lq > Lk`` with ``causal`` would
  leave queries with no key at all and is rejected.
* ``mask`` (bool, broadcastable to (B, H, Lq, Lk), True = attend) combines with ``causal`` by AND.
* ``cu_seqlens`` (N+1,) int32 packs N sequences in one row (B == 1, Lq == Lk == cu_seqlens[-1]): attention
  stays inside each segment (block-diagonal), causal within a segment when ``causal``.

Backends: ``"torch"`` (``scaled_dot_product_attention``; packed batches become a block-diagonal bool
mask), ``"flex"`` (FlexAttention with a block mask — compiled on CUDA, eager on CPU where it is a
correctness path only), ``"flash"`` (flash-attn ``flash_attn_func`` / ``flash_attn_varlen_func``:
CUDA, fp16/bf16, no dense mask). ``"auto"``: flash when it applies, else FlexAttention for packed
batches on CUDA, else SDPA. ``attention_reference`` (explicit softmax) is the test oracle.

``softcap`` (flash-attn's logit soft-capping, used by AToken's 3D Gaussian decoder): scores ``s`` become
``softcap * tanh(s / softcap)`` before the softmax. It runs on flash-attn when that applies, otherwise on
the explicit fp32 softmax path (SDPA and FlexAttention here take no logit transform).
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from avtok.kernels.backends import has_module, import_optional, resolve_backend

__all__ = ["attention", "attention_reference", "build_attention_mask", "segment_ids"]

_BACKENDS = ("torch", "flex", "flash")


def segment_ids(cu_seqlens: Tensor, *, total: int | None = None) -> Tensor:
    """(N+1,) cumulative lengths -> (L,) int64 segment id of every packed position.

    ``total`` (= cu_seqlens[-1], when the caller knows it from a shape) avoids a host sync, so the
    function stays inside one torch.compile graph.
    """
    lengths = cu_seqlens[1:].long() - cu_seqlens[:-1].long()
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=cu_seqlens.device), lengths,
                                   output_size=total)


def _check(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, cu_seqlens: Tensor | None,
           causal: bool) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"attention: q, k, v must be (B, H, L, D); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)} — move heads to dim 1 (einops: 'b l (h d) -> b h l d')")
    if k.shape != v.shape[:3] + (k.shape[3],) or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"attention: incompatible q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}: "
                         "B and H must match, k and v must share Lk, q and k must share D")
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(f"attention: causal with Lq={q.shape[2]} > Lk={k.shape[2]} leaves queries without "
                         "keys; causal aligns queries to the end of the keys (KV cache), pass Lq <= Lk")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"attention: mask must be bool (True = attend), got {mask.dtype}")
    if cu_seqlens is not None and not torch.compiler.is_compiling():
        # the value checks read cu_seqlens on the host: a graph break / sync under torch.compile
        total = int(cu_seqlens[-1])
        if q.shape[0] != 1 or q.shape[2] != total or k.shape[2] != total or int(cu_seqlens[0]) != 0:
            raise ValueError(f"attention: with cu_seqlens the batch must be packed as B=1 and Lq=Lk="
                             f"cu_seqlens[-1]={total} (cu_seqlens[0]=0); got q {tuple(q.shape)}, "
                             f"k {tuple(k.shape)}")
        if bool((cu_seqlens[1:] < cu_seqlens[:-1]).any()):
            raise ValueError("attention: cu_seqlens must be non-decreasing cumulative lengths")


def build_attention_mask(
    lq: int, lk: int, *, mask: Tensor | None = None, cu_seqlens: Tensor | None = None,
    causal: bool = False, device: torch.device | str = "cpu",
) -> Tensor | None:
    """Dense bool mask (broadcastable to (B, H, Lq, Lk)) equivalent to the arguments, or None."""
    allowed = None
    if causal:
        qi = torch.arange(lq, device=device).unsqueeze(-1)
        kj = torch.arange(lk, device=device)
        allowed = kj <= qi + (lk - lq)  # (Lq, Lk), bottom-right aligned
    if cu_seqlens is not None:
        total = lk if torch.compiler.is_compiling() else None  # packed: Lk == cu_seqlens[-1]; no sync
        seg = segment_ids(cu_seqlens.to(device), total=total)
        same = seg.unsqueeze(-1) == seg  # (L, L)
        allowed = same if allowed is None else allowed & same
    if mask is not None:
        allowed = mask.to(device) if allowed is None else allowed & mask.to(device)
    return allowed


def attention_reference(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None = None,
                        cu_seqlens: Tensor | None = None, causal: bool = False,
                        softcap: float | None = None) -> Tensor:
    """Explicit softmax(q k^T / sqrt(D)) v in fp32 (the oracle). Rows without any key give 0."""
    _check(q, k, v, mask, cu_seqlens, causal)
    allowed = build_attention_mask(q.shape[2], k.shape[2], mask=mask, cu_seqlens=cu_seqlens,
                                   causal=causal, device=q.device)
    scores = torch.einsum("bhqd,bhkd->bhqk", q.float(), k.float()) / math.sqrt(q.shape[-1])
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # (B, H, Lq, Lk)
    return torch.einsum("bhqk,bhkd->bhqd", probs, v.float()).to(q.dtype)


def _sdpa(q, k, v, mask, cu_seqlens, causal) -> Tensor:
    if mask is None and cu_seqlens is None and (not causal or q.shape[2] == k.shape[2]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # fused kernels, no mask tensor
    allowed = build_attention_mask(q.shape[2], k.shape[2], mask=mask, cu_seqlens=cu_seqlens,
                                   causal=causal, device=q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


@functools.cache
def _flex_fns(compiled: bool):
    flex = import_optional("torch.nn.attention.flex_attention", purpose="attention backend='flex'")
    fn = torch.compile(flex.flex_attention, dynamic=False) if compiled else flex.flex_attention
    return fn, flex.create_block_mask


def _flex(q, k, v, mask, cu_seqlens, causal) -> Tensor:
    b, h, lq, lk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    offset = lk - lq
    total = lk if torch.compiler.is_compiling() else None  # checked by _check when not compiling
    seg = segment_ids(cu_seqlens.to(q.device), total=total) if cu_seqlens is not None else None
    dense = mask.to(q.device).expand(b, h, lq, lk) if mask is not None else None

    def mask_mod(bi, hi, qi, kj):
        keep = kj >= 0
        if causal:
            keep = keep & (kj <= qi + offset)
        if seg is not None:
            keep = keep & (seg[qi] == seg[kj])
        if dense is not None:
            keep = keep & dense[bi, hi, qi, kj]
        return keep

    flex_fn, create_block_mask = _flex_fns(q.device.type == "cuda")
    block_mask = create_block_mask(mask_mod, b if dense is not None else None,
                                   h if dense is not None else None, lq, lk, device=q.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        return flex_fn(q, k, v, block_mask=block_mask)


def _flash(q, k, v, cu_seqlens, causal, softcap: float | None = None) -> Tensor:
    flash_attn = import_optional("flash_attn", purpose="attention backend='flash'")
    extra = {} if softcap is None else {"softcap": softcap}
    if cu_seqlens is None:
        out = flash_attn.flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         causal=causal, **extra)  # (B, L, H, D) layout
        return out.transpose(1, 2)
    cu = cu_seqlens.to(device=q.device, dtype=torch.int32)
    max_len = int((cu[1:] - cu[:-1]).max())
    q_, k_, v_ = (t[0].transpose(0, 1) for t in (q, k, v))  # (L, H, D)
    out = flash_attn.flash_attn_varlen_func(q_, k_, v_, cu, cu, max_len, max_len, causal=causal, **extra)
    return out.transpose(0, 1).unsqueeze(0)  # (1, H, L, D)


def _usable(q: Tensor, mask: Tensor | None, cu_seqlens: Tensor | None) -> dict[str, bool]:
    on_cuda = q.device.type == "cuda"
    flash_ok = on_cuda and mask is None and q.dtype in (torch.float16, torch.bfloat16)
    return {"flash": flash_ok and has_module("flash_attn"), "flex": True}


def attention(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None = None,
              cu_seqlens: Tensor | None = None, causal: bool = False, backend: str = "auto",
              softcap: float | None = None) -> Tensor:
    """Scaled dot-product attention (scale 1/sqrt(D)) -> (B, H, Lq, D); see the module docstring."""
    _check(q, k, v, mask, cu_seqlens, causal)
    usable = _usable(q, mask, cu_seqlens)
    auto_order = ("flash",) + (("flex",) if cu_seqlens is not None and q.device.type == "cuda" else ())
    name = resolve_backend("attention", backend, supported=_BACKENDS, auto_order=auto_order, usable=usable)
    if softcap is not None and name != "flash":
        return attention_reference(q, k, v, mask=mask, cu_seqlens=cu_seqlens, causal=causal,
                                   softcap=softcap).to(q.dtype)
    if name == "flash":
        return _flash(q, k, v, cu_seqlens, causal, softcap)
    if name == "flex":
        return _flex(q, k, v, mask, cu_seqlens, causal)
    return _sdpa(q, k, v, mask, cu_seqlens, causal)
