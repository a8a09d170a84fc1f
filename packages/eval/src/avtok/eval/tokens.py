"""Token statistics (via avtok.kernels.CodebookStats, not re-implemented here) and throughput."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = ["TokenStats", "token_stats", "Throughput", "ThroughputMeter", "peak_rss_mb"]


@dataclass(kw_only=True, frozen=True)
class TokenStats:
    """Codebook usage (fraction of codes used), perplexity and entropy (bits), per group and mean."""

    usage: list[float]
    perplexity: list[float]
    entropy_bits: list[float]
    num_tokens: int

    def as_metrics(self) -> dict[str, float]:
        g = len(self.usage)
        out = {
            "codebook_usage": sum(self.usage) / g,
            "codebook_perplexity": sum(self.perplexity) / g,
            "codebook_entropy_bits": sum(self.entropy_bits) / g,
        }
        if g > 1:
            for i in range(g):
                out[f"codebook_entropy_bits_g{i}"] = self.entropy_bits[i]
        return out


def _as_list(x) -> list[float]:
    t = torch.as_tensor(x, dtype=torch.float64).flatten()
    return [float(v) for v in t]


def token_stats(indices: Iterable[torch.Tensor], *, codebook_size: int, num_groups: int = 1) -> TokenStats:
    """Accumulate index tensors (..., G) into ``avtok.kernels.CodebookStats`` and read the statistics."""
    from avtok.kernels import CodebookStats

    stats = CodebookStats(codebook_size, num_groups=num_groups)
    total = 0
    for idx in indices:
        if idx.is_floating_point():
            raise TypeError(f"indices: expected integer code indices, got {idx.dtype}; pass tokens.indices")
        if num_groups == 1 and (idx.ndim == 0 or idx.shape[-1] != 1):
            idx = idx.reshape(-1, 1)  # (L, 1): a single-group code stream
        if idx.shape[-1] != num_groups:
            raise ValueError(f"indices: last dim {idx.shape[-1]} != num_groups={num_groups}; reshape to (..., G)")
        stats.update(idx)
        total += idx.numel() // num_groups
    if total == 0:
        raise ValueError("indices: no tokens were given; encode at least one clip")
    return TokenStats(
        usage=_as_list(stats.usage()),
        perplexity=_as_list(stats.perplexity()),
        entropy_bits=_as_list(stats.entropy(base=2)),
        num_tokens=total,
    )


@dataclass(kw_only=True, frozen=True)
class Throughput:
    """Clips/s, tokens/s over the timed calls; peak memory: CUDA allocator peak, or process peak RSS on CPU."""

    clips_per_s: float
    tokens_per_s: float
    seconds: float
    peak_memory_mb: float
    memory_kind: str  # "cuda_max_allocated" or "cpu_peak_rss"


def peak_rss_mb() -> float:
    """This process's peak resident set in MB. On Linux it is the address space's own high-water mark
    (``VmHWM``), not ``ru_maxrss``: the kernel carries ``ru_maxrss`` across exec, so a process started by
    a larger one (a test's subprocess under a pytest worker) would report its parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


class ThroughputMeter:
    """Accumulates wall time of timed model calls, counting clips and tokens."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds, self.clips, self.tokens = 0.0, 0, 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def time(self, fn, *args, tokens: int = 0, **kwargs):
        """Call ``fn`` and add its wall time (synchronising CUDA) to the totals; returns its result."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0
        self.clips += 1
        self.tokens += tokens
        return out

    def result(self) -> Throughput:
        secs = max(self.seconds, 1e-12)
        if self.device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda_max_allocated"
        else:
            peak, kind = peak_rss_mb(), "cpu_peak_rss"
        return Throughput(clips_per_s=self.clips / secs, tokens_per_s=self.tokens / secs, seconds=self.seconds,
                          peak_memory_mb=peak, memory_kind=kind)
