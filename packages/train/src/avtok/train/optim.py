"""AdamW with per-module learning-rate multipliers and no-decay groups; linear warmup then cosine.

Parameter groups: every trainable parameter falls in exactly one ``(multiplier, decay)`` group.
``lr_multipliers`` maps module-name prefixes (``"encoder"``, ``"encoder.blocks.0"``) to a factor of
the base learning rate; the longest matching prefix wins (AToken: encoder ×0.1 when it starts from
pretrained weights). Biases, norm weights and other 1-d parameters get no weight decay, as do
parameters whose module is a norm or an embedding-like table listed in ``no_decay_modules``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from avtok.train.config import TrainConfig

__all__ = ["param_groups", "build_optimizer", "warmup_cosine", "build_scheduler"]

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _multiplier(name: str, multipliers: Mapping[str, float]) -> float:
    best, factor = -1, 1.0
    for prefix, value in multipliers.items():
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
            best, factor = len(prefix), float(value)
    return factor


def _no_decay_names(model: nn.Module, extra: tuple[type, ...]) -> set[str]:
    names = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p.ndim <= 1 or isinstance(module, _NORMS + extra):
                names.add(full)
    return names


_WRAPPER_PARTS = {"_orig_mod", "_checkpoint_wrapped_module"}  # torch.compile, activation checkpointing


def _strip_wrappers(name: str) -> str:
    """Parameter name without the components that compile/checkpoint wrappers insert."""
    return ".".join(part for part in name.split(".") if part not in _WRAPPER_PARTS)


def param_groups(model: nn.Module, *, weight_decay: float, lr_multipliers: Mapping[str, float] | None = None,
                 no_decay_modules: tuple[type, ...] = (nn.Embedding,)) -> list[dict]:
    """Trainable parameters split by (lr multiplier, decay).

    Returns ``[{"params", "names", "lr_scale", "weight_decay"}]``.

    Unknown prefixes in ``lr_multipliers`` raise (a typo would silently train at the full rate).
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module  # same parameters, names without DDP's "module." prefix
    multipliers = dict(lr_multipliers or {})
    names = [_strip_wrappers(n) for n, _ in model.named_parameters()]
    unknown = [p for p in multipliers if not any(n == p or n.startswith(p + ".") for n in names)]
    if unknown:
        roots = sorted({n.split(".")[0] for n in names})
        raise ValueError(f"lr_multipliers: no parameters under {unknown}; top-level modules are {roots}")
    no_decay = {_strip_wrappers(n) for n in _no_decay_names(model, no_decay_modules)}
    groups: dict[tuple[float, bool], dict] = {}
    for raw_name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        name = _strip_wrappers(raw_name)
        scale, decay = _multiplier(name, multipliers), name not in no_decay
        group = groups.setdefault((scale, decay), {"params": [], "names": [], "lr_scale": scale,
                                                   "weight_decay": weight_decay if decay else 0.0})
        group["params"].append(p)
        group["names"].append(name)
    if not groups:
        raise ValueError("model has no trainable parameters (all requires_grad=False); unfreeze some modules")
    return [groups[k] for k in sorted(groups, key=lambda k: (-k[0], not k[1]))]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; each group's base lr is ``cfg.lr * lr_scale``."""
    groups = param_groups(model, weight_decay=cfg.weight_decay, lr_multipliers=cfg.lr_multipliers)
    for g in groups:
        g["lr"] = cfg.lr * g["lr_scale"]
    fused = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             fused=fused or None)


def warmup_cosine(step: int, *, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """Factor of the peak lr at ``step``: ``(step+1)/warmup`` during warmup, then cosine to ``min_ratio``.

    Step ``warmup_steps - 1`` reaches 1.0; step ``max_steps`` (and beyond) is exactly ``min_ratio``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, *,
                    horizon: Callable[[], int] | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR applying :func:`warmup_cosine` to every group's own base lr (multipliers are kept).

    ``horizon`` (called at every step) moves the end of the cosine: the Trainer passes the step at which
    a wall-clock budget is expected to run out; default ``cfg.max_steps``.
    """
    min_ratio = cfg.min_lr / cfg.lr

    def factor(step: int) -> float:
        end = cfg.max_steps if horizon is None else horizon()
        return warmup_cosine(step, warmup_steps=cfg.warmup_steps, max_steps=end, min_ratio=min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
