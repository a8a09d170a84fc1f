"""The one place that builds a generator ``Trainer``: ``train_generator`` (twin DiT, flow matching) and
``train_ar`` (AR transformer, next-token loss), as ``avtok.tokenizer.runner.train_tokenizer`` is for the
tokenizers. The CLIs, the main job, the evidence tools and the tests call these; they hand over a model,
its items and a :class:`~avtok.train.TrainConfig` and get the runtime's :class:`~avtok.train.TrainSummary`.
Under ``torchrun`` (``init_distributed`` first) the global batch is split over the ranks and
``TrainConfig.strategy`` picks DDP or FSDP2 (the twin DiT's blocks are the FSDP2 units); checkpoints and
reports come from rank 0 (the runtime's rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from avtok.eval.tracking import NullTracker, Tracker
from avtok.generator.ar.train import ARTrainConfig, ar_step
from avtok.generator.ovi.config import LatentSpec
from avtok.generator.ovi.flow import FlowMatchingConfig
from avtok.generator.ovi.recipe import flow_step
from avtok.generator.ovi.text import TextEmbeddings
from avtok.generator.ovi.twin_dit import DiTBlock
from avtok.train import ResumableLoader, TrainConfig, Trainer, TrainSummary
from avtok.train.distributed import dist_info
from avtok.train.transformer import Block

__all__ = ["train_ar", "train_generator"]

StepFn = Callable[[nn.Module, dict], dict[str, Tensor]]


def _on_device(step: StepFn, device: str | None) -> StepFn:
    """The Trainer hands batches over as they come; this moves them to the model's device."""
    if device in (None, "cpu"):
        return step
    return lambda model, batch: step(model, {k: v.to(device) for k, v in batch.items()})


def _fit(model: nn.Module, step: StepFn, items: Sequence[dict], cfg: TrainConfig, *, batch_size: int,
         tracker: Tracker | None, params: dict[str, Any] | None, resume: bool, device: str | None,
         shard_modules: tuple[type, ...] = (), on_trainer: Callable[[Trainer], Any] | None = None
         ) -> TrainSummary:
    """Under torchrun the global ``batch_size`` is split over the ranks (each rank a disjoint share)."""
    info = dist_info()
    per_rank = max(1, math.ceil(min(batch_size, len(items)) / info.world_size))
    loader = ResumableLoader(list(items), batch_size=per_rank, rank=info.rank, world_size=info.world_size,
                             seed=cfg.seed)
    trainer = Trainer(model, _on_device(step, device), loader, cfg, tracker=tracker or NullTracker(),
                      params=params or {}, shard_modules=shard_modules)
    if on_trainer is not None:
        on_trainer(trainer)
    return trainer.fit(resume=resume)


def train_generator(
    model: nn.Module,
    items: Sequence[dict[str, Tensor]],
    cfg: TrainConfig,
    *,
    fm: FlowMatchingConfig | None = None,
    spec: LatentSpec | None = None,
    null_text: TextEmbeddings | None = None,
    batch_size: int = 4,
    tracker: Tracker | None = None,
    params: dict[str, Any] | None = None,
    resume: bool = False,
    device: str | None = None,
) -> TrainSummary:
    """Train a twin DiT with flow matching on ``items`` (``latent_dataset`` dicts) through the shared
    Trainer. ``null_text`` is the empty-prompt embedding used for text dropout (zeros when None)."""
    trainers: list[Trainer] = []  # the noise of step k comes from the Trainer's step (resume continues it)
    step = flow_step(fm, spec=spec, null_text=null_text, seed=cfg.seed,
                     step_of=lambda: trainers[0].step if trainers else 0)
    cfg_params = {"generator": model.cfg.to_dict()} if hasattr(model, "cfg") else {}
    return _fit(model, step, items, cfg, batch_size=batch_size, tracker=tracker,
                params={**cfg_params, **(params or {})}, resume=resume, device=device,
                shard_modules=(DiTBlock,), on_trainer=trainers.append)  # FSDP2 units: the DiT blocks


def train_ar(
    model: nn.Module,
    items: Sequence[dict[str, Tensor]],
    cfg: TrainConfig,
    *,
    ar: ARTrainConfig | None = None,
    batch_size: int = 16,
    tracker: Tracker | None = None,
    params: dict[str, Any] | None = None,
    resume: bool = False,
    device: str | None = None,
) -> TrainSummary:
    """Train the AR generator on ``items`` (``token_dataset`` dicts) with its next-token loss."""
    return _fit(model, ar_step(ar or ARTrainConfig()), items, cfg, batch_size=batch_size, tracker=tracker,
                params=params, resume=resume, device=device, shard_modules=(Block,))
