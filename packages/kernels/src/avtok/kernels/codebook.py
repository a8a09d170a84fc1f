"""Codebook usage statistics for quantizers with one index per group (FSQ groups, VQ heads).

Counts accumulate over batches in an int64 (G, K) table; ``all_reduce`` sums them across DDP ranks so
every rank reports global usage. Perplexity is ``2 ** H`` (= ``exp`` of the natural-log entropy) of the
empirical code distribution of each group: ``K`` for uniform use, ``1`` for total collapse.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["CodebookStats"]


class CodebookStats:
    """Per-group code usage counts, usage fraction, entropy and perplexity."""

    def __init__(self, codebook_size: int, num_groups: int = 1, *, device: torch.device | str = "cpu"):
        if codebook_size < 1 or num_groups < 1:
            raise ValueError(f"CodebookStats: codebook_size={codebook_size} and num_groups={num_groups} "
                             "must both be >= 1")
        self.codebook_size = int(codebook_size)
        self.num_groups = int(num_groups)
        self.counts = torch.zeros(self.num_groups, self.codebook_size, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.counts.zero_()

    @torch.no_grad()
    def update(self, indices: Tensor) -> None:
        """Add a batch of indices (..., G) (integer, in [0, codebook_size))."""
        if indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"CodebookStats.update: indices must be integers, got {indices.dtype}")
        if indices.ndim == 0 or indices.shape[-1] != self.num_groups:
            raise ValueError(f"CodebookStats.update: indices shape {tuple(indices.shape)} must end in "
                             f"num_groups={self.num_groups}")
        flat = indices.reshape(-1, self.num_groups).to(self.counts.device, torch.int64)  # (N, G)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.codebook_size):
            raise ValueError(f"CodebookStats.update: indices must lie in [0, {self.codebook_size}); got "
                             f"[{int(flat.min())}, {int(flat.max())}] — wrong codebook_size?")
        offsets = torch.arange(self.num_groups, device=flat.device) * self.codebook_size  # (G,)
        binned = torch.bincount((flat + offsets).reshape(-1), minlength=self.counts.numel())
        self.counts += binned.view(self.num_groups, self.codebook_size)

    def all_reduce(self) -> None:
        """Sum counts over all ranks of the default process group (no-op when not initialised).

        The counts tensor must live where the backend can reduce it: CPU for gloo, CUDA for NCCL
        (create the stats with ``device="cuda"`` there).
        """
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.counts, op=dist.ReduceOp.SUM)

    def total(self) -> Tensor:
        """(G,) number of indices counted per group."""
        return self.counts.sum(-1)

    def usage(self) -> Tensor:
        """(G,) fraction of the codebook used at least once."""
        return (self.counts > 0).sum(-1).double() / self.codebook_size

    def entropy(self, base: float = 2) -> Tensor:
        """(G,) entropy of the empirical code distribution (0 where nothing was counted)."""
        total = self.total().clamp_min(1).double().unsqueeze(-1)  # (G, 1)
        p = self.counts.double() / total  # (G, K)
        nats = -(torch.special.xlogy(p, p)).sum(-1)
        return nats / math.log(base)

    def perplexity(self) -> Tensor:
        """(G,) ``exp(entropy)``: effective number of codes in use."""
        return torch.exp(self.entropy(base=math.e))

    def __repr__(self) -> str:
        return (f"CodebookStats(codebook_size={self.codebook_size}, num_groups={self.num_groups}, "
                f"counted={self.total().tolist()})")
