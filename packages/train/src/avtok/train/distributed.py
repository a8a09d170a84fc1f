"""Process groups from torchrun's environment, DDP / FSDP2 wrapping, rank-0 helpers, metric all-reduce.

``torchrun --nproc-per-node N`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
:func:`init_distributed` reads them (backend ``nccl`` with CUDA, ``gloo`` otherwise). A single
process without those variables runs undistributed: every helper then degrades to a no-op.
FSDP2 is ``torch.distributed.fsdp.fully_shard`` applied to each block class you name, then to the root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "dist_info", "wrap_model", "unwrap", "is_main",
           "all_reduce_mean", "any_rank", "barrier", "no_sync", "gather_objects"]


@dataclass(kw_only=True, frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """The current process's place in the default process group (rank 0 of 1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo()


def init_distributed(backend: str | None = None) -> DistInfo:
    """Initialise the default group from torchrun's environment; no-op without WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist_info()
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {var} is not set; launch with "
                               "torchrun --nproc-per-node N")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return dist_info()


def is_main() -> bool:
    return dist_info().rank == 0


def barrier() -> None:
    if dist_info().enabled:
        dist.barrier()


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def wrap_model(model: nn.Module, strategy: str, *, shard_modules: tuple[type, ...] = (),
               forward_methods: tuple[str, ...] = ()) -> nn.Module:
    """``"none"`` → model; ``"ddp"`` → DistributedDataParallel; ``"fsdp2"`` → fully_shard (in place).

    ``"auto"`` picks DDP when more than one rank runs, else none. FSDP2 shards every submodule whose
    type is in ``shard_modules`` (the transformer blocks), then the root; it needs torch >= 2.6.
    ``forward_methods`` (e.g. ``("encode", "decode")``) are methods that eval hooks call instead of
    ``forward``: FSDP2 gathers the root's parameters around them too (``register_fsdp_forward_method``).
    """
    info = dist_info()
    if strategy == "auto":
        strategy = "ddp" if info.enabled else "none"
    if strategy == "none":
        return model
    if not info.enabled:
        raise RuntimeError(f"strategy={strategy!r} needs torch.distributed with >1 rank; launch with "
                           "torchrun or use strategy='none'")
    if strategy == "ddp":
        device = _device_of(model)
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if strategy == "fsdp2":
        try:
            from torch.distributed.fsdp import fully_shard
        except ImportError as exc:  # pragma: no cover - torch < 2.6
            raise ImportError("FSDP2 needs torch >= 2.6 (torch.distributed.fsdp.fully_shard)") from exc
        with torch.no_grad():  # fully_shard keeps each rank's own values: start every rank from rank 0's
            for t in [*model.parameters(), *model.buffers()]:
                dist.broadcast(t.data, src=0)
        for module in reversed(list(model.modules())):  # descendants first: a sharded unit may nest others
            if shard_modules and module is not model and isinstance(module, shard_modules):
                fully_shard(module)
        fully_shard(model)
        from torch.distributed.fsdp import register_fsdp_forward_method

        for name in forward_methods:
            if callable(getattr(model, name, None)):
                register_fsdp_forward_method(model, name)
        return model
    raise ValueError(f"strategy={strategy!r}: use 'auto', 'none', 'ddp' or 'fsdp2'")


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a DDP wrapper (FSDP2 modules are their own unwrapped form)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def no_sync(model: nn.Module, skip: bool):
    """Skip the gradient all-reduce on accumulation micro-steps (DDP ``no_sync``; FSDP2 resharding flag)."""
    if skip and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(not skip)
    return nullcontext()


def all_reduce_mean(metrics: Mapping[str, float]) -> dict[str, float]:
    """Average scalar metrics over ranks (one all-reduce; identity without a process group)."""
    keys = sorted(metrics)
    info = dist_info()
    if not info.enabled or not keys:
        return {k: float(metrics[k]) for k in keys}
    backend_cuda = dist.get_backend() == "nccl"
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64,
                          device="cuda" if backend_cuda else "cpu")
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return {k: float(v) / info.world_size for k, v in zip(keys, values.tolist(), strict=True)}


def any_rank(flag: bool) -> bool:
    """True when ``flag`` holds on at least one rank (all ranks must agree to skip a step)."""
    if not dist_info().enabled:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` as a list on every rank (``[obj]`` without a process group)."""
    info = dist_info()
    if not info.enabled:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
