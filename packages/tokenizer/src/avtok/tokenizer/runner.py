"""The staged-run driver shared by every tokenizer family: ``train_tokenizer(cfg)``.

It runs a :class:`~avtok.tokenizer.curriculum.Schedule` with the shared runtime (``avtok.train.Trainer``):
one Trainer per stage, each in ``checkpoint_dir/<k>-<stage>``; stage k loads stage k−1's final weights
(model + buffers) before training, and a ``done.json`` marker per finished stage lets ``resume=True`` skip
finished stages and continue the interrupted one bit-exactly. The model it returns (and ``avtok-tokenizer
train`` saves as ``final/``) holds the last stage's EMA weights. Model-family specifics come from the
:data:`~avtok.tokenizer.families.FAMILIES` registry.

The run folder is claimed first (:func:`avtok.train.run_folder.claim_run_folder`): its ``run.json`` holds
the run's identity (:meth:`RunConfig.identity`: family, preset, schedule, data, losses, seed, …), so a folder
holding another run is refused unless ``resume`` (same identity) or ``overwrite`` (moved aside), and
``run.lock`` keeps a second live run out. Resumed stages load strictly (every tensor, same shapes).
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import nn

from avtok.eval.tracking import NullTracker, PrefixedTracker, Tracker
from avtok.tokenizer.curriculum import Schedule, Stage, apply_stage, get_schedule
from avtok.tokenizer.families import ModelFamily, get_family
from avtok.tokenizer.recipes import RunConfig, StageHooks, StageResult, rank_device
from avtok.tokenizer.window_data import log_stats
from avtok.train import CheckpointManager, TrainConfig, Trainer
from avtok.train import distributed as dist
from avtok.train.atomic import atomic_write_json
from avtok.train.run_folder import RunFolderError, claim_on_main

__all__ = ["train_tokenizer", "stage_dir", "claim_tokenizer_run"]

log = logging.getLogger("avtok.training")


def stage_dir(root: Path, index: int, stage: Stage) -> Path:
    return Path(root) / f"{index}-{stage.name}"


def _done_marker(d: Path) -> Path:
    return d / "done.json"


def _load_previous(model: nn.Module, prev_dir: Path, *, ema: bool = False, strict: bool = False) -> None:
    """Load the final weights of the checkpoint in ``prev_dir`` into ``model``.

    ``strict=False`` (stage k−1 → stage k): modules the checkpoint lacks keep their init. ``strict=True``
    (a finished stage or the run's output): every tensor must be there with its shape, else a clear error.
    ``ema=True`` loads the EMA weights instead (when the checkpoint has them).
    """
    ckpt = CheckpointManager(prev_dir).load(None)
    weights = ckpt.ema if ema and ckpt.ema is not None else ckpt.model
    own = model.state_dict()
    usable = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    other = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in weights.items()
             if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in weights]  # (extras are fine: EMA averages non-persistent buffers)
    if not usable or (strict and (other or missing)):
        raise RunFolderError(
            f"{ckpt.path}: does not fit this model ({len(usable)}/{len(own)} tensors match; other shapes: "
            f"{other[:2]}; missing: {missing[:2]}); it was trained with another preset or config: resume "
            "with "
            "that run's --preset and options, or pass --overwrite to move the run aside")
    if other:
        log.warning("%s: %d tensors of another shape keep their init: %s", ckpt.path, len(other), other[:3])
    model.load_state_dict(usable, strict=False)


def claim_tokenizer_run(cfg: RunConfig, *, resume: bool, overwrite: bool = False) -> AbstractContextManager:
    """Claim ``cfg.checkpoint_dir`` for this run on rank 0 (identity + lock; every rank raises its error)."""
    return claim_on_main(cfg.checkpoint_dir, cfg.identity(), summary=cfg.summary(), resume=resume,
                         overwrite=overwrite)


def train_tokenizer(
    cfg: RunConfig, *, tracker: Tracker | None = None, resume: bool = False, overwrite: bool = False
) -> tuple[nn.Module, list[StageResult]]:
    """Run every enabled stage of ``cfg.schedule``; returns the final model and per-stage results.

    ``resume`` continues the run in ``cfg.checkpoint_dir`` (same identity); ``overwrite`` moves a run there
    aside first. Without either, a folder holding a run is refused (:class:`RunFolderError`).
    """
    info = dist.init_distributed()
    with claim_tokenizer_run(cfg, resume=resume, overwrite=overwrite):
        return _train_stages(cfg, tracker or NullTracker(), resume, info)


def _train_stages(cfg: RunConfig, tracker: Tracker, resume: bool,
                  info: dist.DistInfo) -> tuple[nn.Module, list[StageResult]]:
    family: ModelFamily = get_family(cfg.family)
    device = rank_device(cfg.device, info)
    schedule: Schedule = get_schedule(cfg.schedule, family=cfg.family)
    stages = schedule.active
    total = sum(s.fraction for s in stages)
    ctx = family.prepare(cfg)
    tracker.log_params({f"run.{k}": v for k, v in cfg.to_dict().items()})
    results, prev = [], None
    model = None
    for k, stage in enumerate(stages):
        d = stage_dir(cfg.checkpoint_dir, k, stage)
        torch.manual_seed(cfg.seed + k)
        model = family.build(cfg, ctx, stage).to(device)
        if stage.init == "previous" and prev is not None:
            _load_previous(model, prev)
        done = _finished_steps(d, cfg, stage, total) if resume else None
        if done is not None:
            _load_previous(model, d, strict=True)
            results.append(
                StageResult(
                    name=stage.name,
                    steps=done,
                    start_step=done,
                    checkpoint=CheckpointManager(d).latest(),
                    skipped=True,
                )
            )
            prev = d
            continue
        results.append(_run_stage(cfg, ctx, family, model, stage, k, d, total, tracker, resume, schedule))
        prev = d
    if prev is not None:  # the run's output: the last stage's EMA weights in a plain (never sharded) model
        model = family.build(cfg, ctx, stages[-1]).to(device)
        _load_previous(model, prev, ema=True, strict=True)
    return model, results


def _finished_steps(d: Path, cfg: RunConfig, stage: Stage, total: float) -> int | None:
    """Steps of a stage that is finished for this config, None when it must (continue to) train.

    Finished = its ``done.json`` exists and it reached this config's step target, or it stopped on a
    wall-clock budget equal to this config's share (a larger ``--max-steps`` or ``--minutes`` continues it).
    """
    marker = _done_marker(d)
    if not marker.exists():
        return None
    try:
        info = json.loads(marker.read_text())
        steps = int(info["steps"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("%s: unreadable (%s); the stage counts as unfinished and resumes from its checkpoint",
                    marker, err)
        return None
    if steps >= _stage_steps(cfg, stage, total):
        return steps
    if info.get("stop") == "max_minutes" and info.get("minutes") == _stage_minutes(cfg, stage, total):
        return steps
    return None


def _stage_minutes(cfg: RunConfig, stage: Stage, total: float) -> float | None:
    return None if cfg.minutes is None else cfg.minutes * stage.fraction / total


def _stage_steps(cfg: RunConfig, stage: Stage, total: float) -> int:
    return max(1, math.ceil(cfg.max_steps * stage.fraction / total))


def _run_stage(cfg: RunConfig, ctx, family: ModelFamily, model: nn.Module, stage: Stage, k: int, d: Path,  # noqa: PLR0913
               total: float, tracker: Tracker, resume: bool, schedule: Schedule) -> StageResult:
    mults = apply_stage(model, stage)
    hooks: StageHooks = family.hooks(cfg, ctx, model, stage)
    steps = _stage_steps(cfg, stage, total)
    tcfg = TrainConfig(
        lr=cfg.lr,
        min_lr=cfg.lr / 10,
        warmup_steps=min(cfg.warmup_steps, steps // 4),
        max_steps=steps,
        lr_multipliers=mults,
        grad_accum=hooks.grad_accum,
        ema_decay=0.999,
        seed=cfg.seed + k,
        checkpoint_dir=d,
        checkpoint_every=max(1, steps // 2),
        keep_last=2,  # the newest and one before it: a damaged newest checkpoint falls back to it
        log_every=max(1, min(20, steps // 5)),
        eval_every=min(cfg.eval_every, steps),
        max_minutes=_stage_minutes(cfg, stage, total),
        progress=cfg.progress,
        strategy=cfg.strategy,
        anneal_to_budget=cfg.anneal_to_budget,
        max_nonfinite_steps=cfg.max_nonfinite_steps,
    )
    trainer = Trainer(
        model,
        hooks.step_fn,
        hooks.data,
        tcfg,
        shard_modules=family.SHARD_MODULES,  # FSDP2 units (--strategy fsdp2)
        forward_methods=("encode", "decode"),  # the eval / artifact hooks call these (FSDP2 gathers for them)
        tracker=PrefixedTracker(tracker, f"{k}-{stage.name}"),
        evaluate=hooks.evaluate,
        artifacts=hooks.artifacts if cfg.artifacts else None,
        params={"schedule": schedule.to_dict(), "stage": stage.name},
        artifact_dir=d / "artifacts",
    )
    summary = trainer.fit(resume=resume)
    if hooks.data_stats is not None and trainer.info.rank == 0:  # skipped / failed / adjusted media counts
        log_stats(hooks.data_stats(), PrefixedTracker(tracker, f"{k}-{stage.name}"), step=summary.steps,
                  what=f"data ({stage.name})")
    marker = {"steps": summary.steps, "stop": summary.stop_reason, "minutes": tcfg.max_minutes}
    if trainer.info.rank == 0:
        atomic_write_json(_done_marker(d), marker)
    dist.barrier()  # the next stage (every rank) reads this stage's checkpoint and marker
    return StageResult(
        name=stage.name,
        steps=summary.steps,
        start_step=summary.start_step,
        checkpoint=summary.checkpoint,
        eval_metrics=dict(summary.eval_metrics),
    )
