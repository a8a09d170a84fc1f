"""Typed configuration of the shared training runtime (one source of truth, logged whole to the tracker).

Defaults are AToken's (seed 002 §3.5): AdamW β (0.9, 0.95), weight decay 0.1, 2k warmup steps to
3e-4 then cosine to 3e-5, EMA 0.9999. Everything model-specific (which modules get a learning-rate
multiplier, which metric picks the best checkpoint) is data here, not code in the trainer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "flatten_config"]

_PRECISIONS = ("auto", "fp32", "bf16")
_STRATEGIES = ("auto", "none", "ddp", "fsdp2")


@dataclass(kw_only=True)
class TrainConfig:
    """Optimiser, schedule, loop, checkpoint and logging settings of :class:`~.trainer.Trainer`."""

    # optimiser (AdamW) and schedule (linear warmup, then cosine to min_lr)
    lr: float = 3e-4
    min_lr: float = 3e-5
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    eps: float = 1e-8
    warmup_steps: int = 2000
    max_steps: int = 100_000
    # per-module learning-rate multipliers: {"encoder": 0.1} scales every parameter under model.encoder
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    # loop
    grad_accum: int = 1
    clip_grad_norm: float | None = 1.0
    ema_decay: float | None = 0.9999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at update n (see training.ema)
    # divergence guard: this many consecutive non-finite steps (each one skipped) stop the run with
    # TrainingDiverged; the newest checkpoint stays the last finite one (None: skip forever)
    max_nonfinite_steps: int | None = 20
    precision: str = "auto"  # "auto" = bf16 autocast on CUDA, fp32 elsewhere
    strategy: str = "auto"  # "auto" = DDP when torch.distributed is initialised with >1 rank
    seed: int = 0
    max_minutes: float | None = None  # wall-clock budget of this fit() call; stops and checkpoints when spent
    # with max_minutes: the cosine ends where the budget is expected to end (steps/s measured as it runs),
    # not at max_steps; False keeps the step-based schedule (a large max_steps then never decays)
    anneal_to_budget: bool = True
    # checkpoints
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 1000
    keep_last: int = 3
    keep_best: bool = True
    best_metric: str = "eval/loss"
    best_mode: str = "min"
    # logging and evaluation
    log_every: int = 10
    eval_every: int | None = None
    artifacts_every: int | None = None
    eval_with_ema: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # JSON round trips give lists
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)
        self._check_ranges()
        if self.precision not in _PRECISIONS:
            raise ValueError(f"TrainConfig.precision={self.precision!r}: use one of {_PRECISIONS}")
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"TrainConfig.strategy={self.strategy!r}: use one of {_STRATEGIES}")
        if self.best_mode not in ("min", "max"):
            raise ValueError(f"TrainConfig.best_mode={self.best_mode!r}: use 'min' or 'max'")
        bad = {k: v for k, v in self.lr_multipliers.items() if not v >= 0}
        if bad:
            raise ValueError(f"TrainConfig.lr_multipliers {bad}: multipliers must be >= 0 "
                             "(0 freezes the module)")

    def _check_ranges(self) -> None:
        checks = {
            "lr": self.lr > 0, "min_lr": 0 <= self.min_lr <= self.lr, "warmup_steps": self.warmup_steps >= 0,
            "max_steps": self.max_steps >= 1, "grad_accum": self.grad_accum >= 1,
            "weight_decay": self.weight_decay >= 0, "checkpoint_every": self.checkpoint_every >= 1,
            "keep_last": self.keep_last >= 1, "log_every": self.log_every >= 1,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "ema_decay": self.ema_decay is None or 0 <= self.ema_decay < 1,
            "clip_grad_norm": self.clip_grad_norm is None or self.clip_grad_norm > 0,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "max_nonfinite_steps": self.max_nonfinite_steps is None or self.max_nonfinite_steps >= 1,
            "eval_every": self.eval_every is None or self.eval_every >= 1,
            "artifacts_every": self.artifacts_every is None or self.artifacts_every >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is out of range; fix the value "
                                 "(lr > 0, 0 <= min_lr <= lr, counts >= 1, 0 <= betas/ema_decay < 1)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, tuples as lists)."""
        out = dataclasses.asdict(self)
        out["checkpoint_dir"] = None if self.checkpoint_dir is None else str(self.checkpoint_dir)
        out["betas"] = list(self.betas)
        return out


def flatten_config(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dataclasses / dicts → flat ``{"a.b.c": value}`` (tracker params: the whole config)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
    if not isinstance(obj, dict):
        return {prefix.rstrip("."): obj}
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        nested_dc = dataclasses.is_dataclass(value) and not isinstance(value, type)
        if (isinstance(value, dict) and value) or nested_dc:
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
