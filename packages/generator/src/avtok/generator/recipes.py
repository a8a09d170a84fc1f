"""The one place that builds a generator ``Trainer``: ``train_generator`` (twin DiT, flow matching) and
``train_ar`` (AR transformer, next-token loss), as ``avtok.tokenizer.runner.train_tokenizer`` is for the
tokenizers. The CLIs, the main job, the evidence tools and the tests call these; they hand over a model,
its items and a :class:`~avtok.train.TrainConfig` and get the runtime's :class:`~avtok.train.TrainSummary`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from avtok.eval.tracking import NullTracker, Tracker
from avtok.generator.ar.train import ARTrainConfig, ar_step
from avtok.generator.ovi.config import LatentSpec
from avtok.generator.ovi.flow import FlowMatchingConfig
from avtok.generator.ovi.recipe import flow_step
from avtok.generator.ovi.text import TextEmbeddings
from avtok.train import ResumableLoader, TrainConfig, Trainer, TrainSummary

__all__ = ["train_ar", "train_generator"]

StepFn = Callable[[nn.Module, dict], dict[str, Tensor]]


def _on_device(step: StepFn, device: str | None) -> StepFn:
    """The Trainer hands batches over as they come; this moves them to the model's device."""
    if device in (None, "cpu"):
        return step
    return lambda model, batch: step(model, {k: v.to(device) for k, v in batch.items()})


def _fit(model: nn.Module, step: StepFn, items: Sequence[dict], cfg: TrainConfig, *, batch_size: int,
         tracker: Tracker | None, params: dict[str, Any] | None, resume: bool, device: str | None) -> TrainSummary:
    loader = ResumableLoader(list(items), batch_size=min(batch_size, len(items)), seed=cfg.seed)
    trainer = Trainer(model, _on_device(step, device), loader, cfg, tracker=tracker or NullTracker(),
                      params=params or {})
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
    step = flow_step(fm, spec=spec, null_text=null_text)
    cfg_params = {"generator": model.cfg.to_dict()} if hasattr(model, "cfg") else {}
    return _fit(model, step, items, cfg, batch_size=batch_size, tracker=tracker,
                params={**cfg_params, **(params or {})}, resume=resume, device=device)


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
                params=params, resume=resume, device=device)
