"""Full (unsharded) state dicts of model, optimizer and EMA for every strategy (none, DDP, FSDP2).

Checkpoints always hold full tensors, so a run saved under FSDP2 on 8 GPUs resumes on 1 CPU and back.
Under FSDP2 the gathers are collectives: every rank must call these functions, rank 0 writes the files.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avtok.train.distributed import unwrap
from avtok.train.ema import EMA

__all__ = ["is_fsdp2", "full_model_state", "load_model_state", "full_optimizer_state", "load_optimizer_state",
           "full_ema_state", "load_ema_state"]


def is_fsdp2(model: nn.Module) -> bool:
    """True when ``model`` was wrapped with ``fully_shard`` (its parameters are DTensors)."""
    p = next(model.parameters(), None)
    return p is not None and hasattr(p, "device_mesh") and hasattr(p, "to_local")


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_model_state(model: nn.Module) -> dict[str, Tensor]:
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_options(cpu_offload=True))
    return unwrap(model).state_dict()


def load_model_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(model, state, options=_options())
        return
    unwrap(model).load_state_dict(state)


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    return optimizer.state_dict()


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    if is_fsdp2(model):
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=_options())
        return
    optimizer.load_state_dict(state)


def _params_and_buffers(model: nn.Module) -> dict[str, Tensor]:
    m = unwrap(model)
    return dict(m.named_parameters()) | dict(m.named_buffers())


def full_ema_state(model: nn.Module, ema: EMA) -> dict[str, Tensor]:
    """EMA shadows as full tensors (FSDP2: local shards re-assembled with the parameter's mesh)."""
    if not is_fsdp2(model):
        return ema.state_dict()
    from torch.distributed.tensor import DTensor

    out = {}
    for name, ref in _params_and_buffers(model).items():
        shard = ema.shadow[name]
        if isinstance(ref, DTensor):
            shard = DTensor.from_local(shard, ref.device_mesh, ref.placements, shape=ref.shape,
                                       stride=ref.stride()).full_tensor()
        out[name] = shard.cpu()
    return out


def load_ema_state(model: nn.Module, ema: EMA, state: dict[str, Tensor], *, num_updates: int) -> None:
    """Inverse of :func:`full_ema_state` (FSDP2: each rank keeps its own shard of the full tensors)."""
    if is_fsdp2(model):
        from torch.distributed.tensor import DTensor, distribute_tensor

        refs = _params_and_buffers(model)
        state = {name: distribute_tensor(value.to(refs[name].device), refs[name].device_mesh,
                                         refs[name].placements).to_local()
                 if isinstance(refs[name], DTensor) else value for name, value in state.items()}
    ema.load_state_dict(state, num_updates=num_updates)
