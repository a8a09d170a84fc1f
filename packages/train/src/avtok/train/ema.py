"""Exponential moving average of model weights: ``ema = decay * ema + (1 - decay) * param`` per step.

With ``warmup=True`` update ``n`` (0-based) uses ``min(decay, (1 + n) / (10 + n))`` instead of ``decay``
(the warm-up of timm's and diffusers' EMA): early on the average follows the fast-moving weights instead
of staying near the random init, so a short run's EMA is not worse than its raw weights.

The shadow copy is kept in fp32 (a bf16 shadow cannot absorb updates of size ``(1 - 0.9999) * param``)
and covers floating-point parameters *and* buffers (norm statistics are averaged too; integer buffers
are copied). :meth:`swap` temporarily loads the averaged weights for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["EMA"]


def _local(t: Tensor) -> Tensor:
    """The local shard of an FSDP2 DTensor parameter (the tensor itself otherwise)."""
    return t.to_local() if hasattr(t, "to_local") else t


class EMA:
    """Shadow weights of ``model``; ``update(model)`` after every optimiser step."""

    def __init__(self, model: nn.Module, *, decay: float, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay={decay}: must lie in [0, 1); AToken uses 0.9999")
        self.decay, self.warmup = float(decay), bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {
            name: _local(t).detach().clone().float() if t.is_floating_point() else _local(t).detach().clone()
            for name, t in self._tensors(model)
        }

    @staticmethod
    def _tensors(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
        yield from model.named_parameters()
        yield from model.named_buffers()

    def current_decay(self) -> float:
        """Decay the next :meth:`update` applies (``decay``, or its warm-up value)."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        floats_ema, floats_new = [], []
        for name, t in self._tensors(model):
            shadow, value = self.shadow[name], _local(t).detach()
            if shadow.is_floating_point():
                floats_ema.append(shadow)
                floats_new.append(value.float())
            else:
                shadow.copy_(value)
        if floats_ema:  # ema += (1 - decay) * (new - ema), one fused call over all tensors
            torch._foreach_lerp_(floats_ema, floats_new, 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s parameters and buffers with the averaged values."""
        for name, t in self._tensors(model):
            _local(t).copy_(self.shadow[name].to(t.dtype))

    @contextmanager
    def swap(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block ``model`` holds the EMA weights; the trained weights come back afterwards."""
        backup = {name: _local(t).detach().clone() for name, t in self._tensors(model)}
        self.copy_to(model)
        try:
            yield model
        finally:
            if hasattr(model, "reshard"):  # FSDP2: a forward in the block leaves the root unsharded
                model.reshard()
            with torch.no_grad():
                for name, t in self._tensors(model):
                    _local(t).copy_(backup[name])

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, Tensor], *, num_updates: int = 0) -> None:
        missing = sorted(set(self.shadow) - set(state))
        unexpected = sorted(set(state) - set(self.shadow))
        if missing or unexpected:
            raise KeyError(f"EMA state: missing {missing[:5]}, unexpected {unexpected[:5]}; the checkpoint "
                           "belongs to a different model")
        for name, value in state.items():
            self.shadow[name].copy_(value)
        self.num_updates = num_updates
