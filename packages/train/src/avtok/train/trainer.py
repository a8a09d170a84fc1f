"""The one training loop of avtok: any ``nn.Module`` plus a step function that returns a loss dict.

``step_fn(model, batch) -> {"loss": scalar, **other_scalars}``: ``loss`` is back-propagated, every entry
is logged as ``train/<key>``. Per optimiser step the loop runs ``grad_accum`` micro-batches (DDP's
all-reduce only on the last), under bf16 autocast on CUDA, then: NaN/inf guard (any rank non-finite →
gradients dropped, optimiser untouched, ``train/nan_skipped`` incremented and logged), gradient clipping,
AdamW step, scheduler step, EMA update. Every ``eval_every`` steps ``evaluate(model, step)`` runs (on
the EMA weights by default) and ``artifacts(model, step, out_dir)`` writes files for the tracker.
Checkpoints are atomic; ``fit(resume=True)`` continues bit-exactly from the latest one.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from avtok.eval.tracking import NullTracker, Tracker
from avtok.train import distributed as D
from avtok.train import state_dicts as S
from avtok.train.checkpoint import Checkpoint, CheckpointManager, capture_rng, restore_rng
from avtok.train.config import TrainConfig, flatten_config
from avtok.train.data import DataSource, SkipAheadIterator
from avtok.train.ema import EMA
from avtok.train.optim import build_optimizer, build_scheduler
from avtok.train.summary import TrainSummary

__all__ = ["Trainer", "StepFn", "EvaluateFn", "ArtifactsFn", "MetricsFn"]

log = logging.getLogger("avtok.training")
StepFn = Callable[[nn.Module, Any], Mapping[str, Tensor | float]]


class EvaluateFn(Protocol):
    def __call__(self, model: nn.Module, step: int) -> Mapping[str, float]: ...


class ArtifactsFn(Protocol):
    def __call__(self, model: nn.Module, step: int, out_dir: Path) -> list[Path]: ...


class MetricsFn(Protocol):
    """Extra metrics at log steps, e.g. codebook usage from ``avtok.kernels.CodebookStats``."""

    def __call__(self, model: nn.Module, step: int) -> Mapping[str, float]: ...


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


class Trainer:
    """Trains ``model`` with ``step_fn`` on ``data`` (an endless iterator; see :mod:`.data`)."""

    def __init__(self, model: nn.Module, step_fn: StepFn, data: Any, cfg: TrainConfig, *,
                 tracker: Tracker | None = None, evaluate: EvaluateFn | None = None,
                 artifacts: ArtifactsFn | None = None, extra_metrics: MetricsFn | None = None,
                 params: Mapping[str, Any] | None = None, shard_modules: tuple[type, ...] = (),
                 forward_methods: tuple[str, ...] = (),
                 artifact_dir: str | Path | None = None) -> None:
        self.cfg, self.step_fn = cfg, step_fn
        self.info = D.dist_info()
        self.data = data if isinstance(data, DataSource) else SkipAheadIterator(data)
        self.tracker = tracker if (tracker is not None and self.info.rank == 0) else NullTracker()
        self.evaluate, self.artifacts, self.extra_metrics = evaluate, artifacts, extra_metrics
        self.params = dict(params or {})
        _seed_everything(cfg.seed + self.info.rank)
        self.model = D.wrap_model(model, cfg.strategy, shard_modules=shard_modules,
                                  forward_methods=forward_methods)
        self.module = D.unwrap(self.model)
        self.optimizer = build_optimizer(self.model, cfg)
        self.horizon = cfg.max_steps  # where the cosine ends; moved by a wall-clock budget (_update_horizon)
        self.scheduler = build_scheduler(self.optimizer, cfg, horizon=lambda: self.horizon)
        self.ema = (EMA(self.module, decay=cfg.ema_decay, warmup=cfg.ema_warmup)
                    if cfg.ema_decay is not None else None)
        self.ckpt = (CheckpointManager(cfg.checkpoint_dir, keep_last=cfg.keep_last, keep_best=cfg.keep_best,
                                       best_mode=cfg.best_mode) if cfg.checkpoint_dir is not None else None)
        default_art = (cfg.checkpoint_dir or Path.cwd()) / "artifacts"
        self.artifact_dir = Path(artifact_dir) if artifact_dir is not None else default_art
        self.step, self.skipped, self._logged_step, self._eval_step = 0, 0, -1, -1
        self.last_metrics: dict[str, float] = {}
        self.eval_metrics: dict[str, float] = {}
        self.device = next(self.module.parameters()).device

    # ------------------------------------------------------------------ precision
    def autocast(self):
        """bf16 autocast on CUDA (``precision="auto"``/``"bf16"``), bf16 on CPU only when asked."""
        p = self.cfg.precision
        if p == "fp32" or (p == "auto" and self.device.type != "cuda"):
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # ------------------------------------------------------------------ one optimiser step
    def _micro_steps(self) -> dict[str, float]:
        sums: dict[str, Tensor] = {}
        n = self.cfg.grad_accum
        for i in range(n):
            batch = next(self.data)
            with D.no_sync(self.model, skip=i < n - 1):
                with self.autocast():
                    out = self.step_fn(self.model, batch)
                if "loss" not in out:
                    raise KeyError(f"step_fn returned keys {sorted(out)}; it must return a 'loss' entry to "
                                   "back-propagate")
                (out["loss"].float() / n).backward()  # outside autocast, as torch.amp recommends
            for key, value in out.items():
                v = value.detach().float() if isinstance(value, Tensor) else torch.tensor(float(value))
                if v.numel() != 1:
                    raise ValueError(f"step_fn entry {key!r} has shape {tuple(v.shape)}; return scalars only "
                                     "(reduce with .mean() first)")
                sums[key] = sums.get(key, 0.0) + v.to(self.device).reshape(()) / n
        keys = list(sums)
        return dict(zip(keys, torch.stack([sums[k] for k in keys]).tolist(), strict=True))  # one sync

    def _clip(self) -> Tensor:
        max_norm = self.cfg.clip_grad_norm if self.cfg.clip_grad_norm is not None else math.inf
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, error_if_nonfinite=False)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def train_step(self) -> dict[str, float]:
        """One optimiser step (accumulation, guard, clip, AdamW, schedule, EMA); returns local metrics."""
        self.model.train()
        sums = self._micro_steps()
        grad_norm = self._clip()
        local_bad = not (math.isfinite(sums["loss"]) and bool(torch.isfinite(grad_norm)))
        lr = self.cfg.lr * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)  # base lr of this step
        if D.any_rank(local_bad):
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            log.warning("step %d: non-finite loss or gradient norm (loss=%s, grad_norm=%s); step skipped "
                        "(%d so far)", self.step + 1, sums["loss"], float(grad_norm), self.skipped)
        else:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.module)
        self.scheduler.step()
        self.step += 1
        metrics = {f"train/{k}": v for k, v in sums.items()}
        metrics.update({"train/lr": lr, "train/grad_norm": float(grad_norm),
                        "train/nan_skipped": float(self.skipped)})
        return metrics

    # ------------------------------------------------------------------ eval, artifacts, logging
    def _eval_model(self):
        use_ema = self.cfg.eval_with_ema and self.ema is not None
        return self.ema.swap(self.module) if use_ema else nullcontext(self.module)

    def run_eval(self) -> dict[str, float]:
        if self.evaluate is None:
            return {}
        with self._eval_model() as model:
            model.eval()
            with torch.no_grad():
                raw = self.evaluate(model, self.step)
            model.train()
        metrics = D.all_reduce_mean({k if "/" in k else f"eval/{k}": float(v) for k, v in raw.items()})
        self.eval_metrics, self._eval_step = metrics, self.step
        self.tracker.log_metrics(metrics, step=self.step)
        return metrics

    def run_artifacts(self) -> list[Path]:
        fsdp = S.is_fsdp2(self.model)
        if self.artifacts is None or (self.info.rank != 0 and not fsdp):
            return []
        out_dir = self.artifact_dir / f"step-{self.step:08d}"
        if self.info.rank != 0:
            out_dir = out_dir / f"rank{self.info.rank}"  # FSDP2 forwards need every rank; rank 0 logs
        out_dir.mkdir(parents=True, exist_ok=True)
        with self._eval_model() as model:
            model.eval()
            with torch.no_grad():
                paths = [Path(p) for p in self.artifacts(model, self.step, out_dir)]
            model.train()
        for path in paths:
            self.tracker.log_artifact(path, artifact_path=f"step-{self.step:08d}")
        return paths

    def _log(self, metrics: dict[str, float]) -> None:
        if self.extra_metrics is not None:
            metrics = dict(metrics, **self.extra_metrics(self.module, self.step))
        self.last_metrics = D.all_reduce_mean(metrics)
        self.tracker.log_metrics(self.last_metrics, step=self.step)
        self._logged_step = self.step

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, *, metric: float | None = None, elapsed: float = 0.0) -> Path | None:
        """Gather full states (collective under FSDP2); rank 0 writes atomically. Returns the path."""
        if self.ckpt is None:
            return None
        model_state = S.full_model_state(self.model)
        optim_state = S.full_optimizer_state(self.model, self.optimizer)
        ema_state = S.full_ema_state(self.model, self.ema) if self.ema is not None else None
        rng = D.gather_objects(capture_rng())
        data_state = self.data.state_dict()  # every rank: a streamed source gathers all ranks' positions
        path = None
        if self.info.rank == 0:
            state = {"scheduler": self.scheduler.state_dict(), "data": data_state,
                     "skipped": self.skipped, "ema_updates": self.ema.num_updates if self.ema else 0,
                     "elapsed_s": elapsed, "world_size": self.info.world_size, "config": self.cfg.to_dict(),
                     "horizon": self.horizon}
            ckpt = Checkpoint(step=self.step, model=model_state, ema=ema_state, optimizer=optim_state,
                              state=state, rng=rng)
            path = self.ckpt.save(ckpt, metric=metric)
        D.barrier()
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> int:
        """Restore everything from ``path`` (default: the latest checkpoint); returns the step."""
        if self.ckpt is None:
            raise ValueError("resume needs TrainConfig.checkpoint_dir; set it to the run's checkpoint "
                             "directory")
        ckpt = self.ckpt.load(path)
        S.load_model_state(self.model, ckpt.model)
        S.load_optimizer_state(self.model, self.optimizer, ckpt.optimizer)
        self.horizon = int(ckpt.state.get("horizon", self.cfg.max_steps))
        self.scheduler.load_state_dict(ckpt.state["scheduler"])
        if self.ema is not None and ckpt.ema is not None:
            S.load_ema_state(self.model, self.ema, ckpt.ema, num_updates=ckpt.state["ema_updates"])
        self.data.load_state_dict(ckpt.state["data"])
        self.step, self.skipped = ckpt.step, int(ckpt.state["skipped"])
        if len(ckpt.rng) == self.info.world_size:
            restore_rng(ckpt.rng[self.info.rank])
        else:
            log.warning("checkpoint has RNG for %d ranks, this run has %d: RNG reseeded, the resumed run is "
                        "valid but not bit-identical", len(ckpt.rng), self.info.world_size)
            _seed_everything(self.cfg.seed + self.info.rank + ckpt.step)
        return self.step

    # ------------------------------------------------------------------ the loop
    def _due(self, every: int | None) -> bool:
        return every is not None and self.step % every == 0

    def _time_up(self, start: float) -> bool:
        if self.cfg.max_minutes is None:
            return False
        return D.any_rank(time.monotonic() - start >= 60.0 * self.cfg.max_minutes)

    _HORIZON_EVERY = 10  # steps between horizon updates (a collective under DDP: every rank at once)

    def _update_horizon(self, start: float, first: int) -> None:
        """With a wall-clock budget, end the cosine where the budget should run out: ``step + rate ·
        remaining seconds`` (steps/s measured over this fit), capped at ``max_steps``; ranks agree on the
        mean. Without a budget (or ``anneal_to_budget=False``) the horizon stays ``max_steps``."""
        cfg = self.cfg
        if cfg.max_minutes is None or not cfg.anneal_to_budget or self.step % self._HORIZON_EVERY:
            return
        elapsed = time.monotonic() - start
        rate = (self.step - first) / max(elapsed, 1e-9)
        estimate = self.step + rate * max(0.0, 60.0 * cfg.max_minutes - elapsed)
        estimate = D.all_reduce_mean({"horizon": estimate})["horizon"]
        self.horizon = int(min(cfg.max_steps, max(self.step + 1, round(estimate))))

    def _after_step(self, metrics: dict[str, float], start: float) -> None:
        cfg = self.cfg
        if self._due(cfg.log_every):
            self._log(metrics)
        best_metric = None
        if self._due(cfg.eval_every):
            best_metric = self.run_eval().get(cfg.best_metric)
        if self._due(cfg.artifacts_every or cfg.eval_every):
            self.run_artifacts()
        new_best = best_metric is not None and self.ckpt is not None and self.ckpt.is_better(best_metric)
        if self._due(cfg.checkpoint_every) or new_best:
            self.save_checkpoint(metric=best_metric, elapsed=time.monotonic() - start)

    def fit(self, *, resume: bool | str | Path = False) -> TrainSummary:
        """Train until ``max_steps`` or ``max_minutes``; returns (and on rank 0 prints) a summary."""
        cfg = self.cfg
        if resume:
            latest = self.ckpt.latest() if self.ckpt is not None else None
            if resume is not True or latest is not None:
                self.load_checkpoint(None if resume is True else resume)
                log.info("resumed from step %d", self.step)
            else:
                log.info("resume requested but %s holds no checkpoint: starting at step 0",
                         cfg.checkpoint_dir)
        self.tracker.log_params(flatten_config({"train": cfg.to_dict(), **self.params}))
        start, first = time.monotonic(), self.step
        bar = tqdm(total=cfg.max_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and self.info.rank == 0))
        reason = "max_steps"
        while self.step < cfg.max_steps:
            metrics = self.train_step()
            self._update_horizon(start, first)
            bar.total = self.horizon
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['train/loss']:.4g}", lr=f"{metrics['train/lr']:.2e}",
                            refresh=False)
            self._after_step(metrics, start)
            if self.step < cfg.max_steps and self._time_up(start):
                reason = "max_minutes"
                break
        bar.close()
        if self.step > first:
            self._finish_step(metrics, start)
        path = self._final_checkpoint(start)
        return self._summary(first, start, reason, path)

    def _finish_step(self, metrics: dict[str, float], start: float) -> None:
        """The last step is always logged and evaluated (off-cadence ones too), so the summary is current."""
        if self._logged_step != self.step:
            self._log(metrics)
        if self.evaluate is not None and self._eval_step != self.step:
            value = self.run_eval().get(self.cfg.best_metric)
            if value is not None and self.ckpt is not None and self.ckpt.is_better(value):
                self.save_checkpoint(metric=value, elapsed=time.monotonic() - start)

    def _final_checkpoint(self, start: float) -> Path | None:
        if self.ckpt is None:
            return None
        latest = self.ckpt.latest()
        if latest is not None and latest == self.ckpt.path(self.step):
            return latest
        return self.save_checkpoint(elapsed=time.monotonic() - start)

    def _summary(self, first: int, start: float, reason: str, path: Path | None) -> TrainSummary:
        wall = time.monotonic() - start
        summary = TrainSummary(
            start_step=first, steps=self.step, skipped_steps=self.skipped, stop_reason=reason,
            wall_seconds=wall, steps_per_second=(self.step - first) / wall if wall > 0 else 0.0,
            last_metrics=dict(self.last_metrics), eval_metrics=dict(self.eval_metrics),
            best=self.ckpt.best() if self.ckpt is not None else None, checkpoint=path,
        )
        if self.cfg.progress and self.info.rank == 0:
            summary.print()
        return summary
