"""Training recipes: real-clip data, step functions, held-out evaluation and the staged-run driver.

``train_tokenizer(cfg)`` runs a :class:`~avtok.tokenizer.curriculum.Schedule` with the shared runtime
(``avtok.tokenizer.training.Trainer``): one Trainer per stage, each in ``checkpoint_dir/<k>-<stage>``;
stage k loads stage k−1's final weights (model + buffers) before training, and a ``done.json`` marker per
finished stage lets ``resume=True`` skip finished stages and continue the interrupted one bit-exactly.
The model it returns (and ``avtok-tokenizer train`` saves as ``final/``) holds the last stage's EMA
weights — the weights every held-out evaluation during training scored. With ``minutes`` the cosine
schedule of each stage ends where its share of the budget runs out (``TrainConfig.anneal_to_budget``).

Multi-process: under ``torchrun --nproc-per-node N`` the driver joins the process group
(``init_distributed``: gloo on CPU, nccl on CUDA, one GPU per local rank), every loader splits the global
``batch_size`` over the ranks (rank r takes its slice of the same shuffled batch, so N ranks see exactly
what one process sees), the runtime wraps the model in DDP, and rank 0 alone writes checkpoints, stage
markers and logs. A single process without torchrun's variables runs undistributed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from avtok.eval.tracking import NullTracker, PrefixedTracker, Tracker
from avtok.media_io import AVClip, read_clip
from avtok.media_io.samples import sample_path
from avtok.tokenizer.curriculum import (
    Schedule,
    Stage,
    apply_stage,
    get_schedule,
)
from avtok.tokenizer.training import CheckpointManager, ResumableLoader, TrainConfig, Trainer
from avtok.tokenizer.training import distributed as dist

__all__ = [
    "RunConfig",
    "StageResult",
    "resolve_data",
    "load_media",
    "split_holdout",
    "train_tokenizer",
    "stage_dir",
    "windows",
    "evenly",
    "StageHooks",
    "batch_loader",
    "rank_device",
]


@dataclass(kw_only=True)
class RunConfig:
    """One ``avtok-tokenizer train`` run (logged whole as tracker params)."""

    family: str = "av"  # "av" or "visual"
    preset: str = "tiny"
    schedule: str = "vfal"
    data: str = "sample:concert"
    holdout_seconds: float = 10.0
    minutes: float | None = None
    max_steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 50
    eval_every: int = 200
    eval_windows: int = 16
    checkpoint_dir: Path = Path("runs/tokenizer")
    device: str = "cpu"
    strategy: str = "auto"  # "auto" (DDP under torchrun), "ddp", "fsdp2" (shards the transformer blocks)
    anneal_to_budget: bool = True  # with minutes: each stage's cosine ends where its budget runs out
    seed: int = 0
    gram: bool = True  # Gram term of the reconstruction loss (ablation: --no-gram)
    perceptual: bool = True  # Inception perceptual + Gram terms on images / AV frames (off: L1 only)
    mrstft: bool = True  # AV: multi-resolution STFT through the frozen HiFi-GAN vocoder
    ar_prior_weight: float = 0.01  # AV: AR-prior CE weight (LARP's 0.06 cost 1.1 dB here, README; 0 = off)
    align_teacher: str | None = None  # AV: TorchScript (video, wave) -> (video, audio) features (REPA term)
    image_size: int = 64  # visual: frame side
    mel_images: bool = False  # visual: also train on log-mels as grey images (avtok.tokenizer.mel_image)
    artifacts: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        self.checkpoint_dir = Path(self.checkpoint_dir)
        if self.family not in ("av", "visual"):
            raise ValueError(f"RunConfig.family={self.family!r}: use 'av' or 'visual'")
        get_schedule(self.schedule, family=self.family)
        if self.align_teacher is not None and not Path(self.align_teacher).is_file():
            raise ValueError(
                f"--align-teacher {self.align_teacher}: no such file. No audio-visual foundation model ships "
                "offline: export one on a connected machine as TorchScript with forward(video (B,T,H,W,3) in "
                "[-1,1], wave (B,samples) 22.05 kHz) -> (video_feats, audio_feats) and pass its local path, "
                "or drop the flag"
            )
        if self.strategy not in ("auto", "none", "ddp", "fsdp2"):
            raise ValueError(f"RunConfig.strategy={self.strategy!r}: use auto, none, ddp or fsdp2")
        if min(self.holdout_seconds, self.ar_prior_weight) < 0 or min(self.max_steps, self.batch_size) < 1:
            raise ValueError("RunConfig: holdout_seconds and ar_prior_weight must be >= 0, max_steps and "
                             "batch_size >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


@dataclass(kw_only=True)
class StageResult:
    name: str
    steps: int
    start_step: int = 0
    checkpoint: Path | None
    eval_metrics: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


def resolve_data(data: str) -> list[Path]:
    """``sample:<name>`` (bundled clip), a media file, a folder of media, or a text manifest (one path
    per line)."""
    if data.startswith("sample:"):
        return [sample_path(data.split(":", 1)[1])]
    path = Path(data)
    if path.is_dir():
        from avtok.media_io.datasets import list_media

        return list_media(path)
    if path.suffix in (".txt", ".lst") and path.is_file():
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        return [Path(ln) if Path(ln).is_absolute() else path.parent / ln for ln in lines]
    if path.is_file():
        return [path]
    raise ValueError(
        f"--data {data!r}: not a file, folder, manifest (.txt) or sample:<name> (e.g. sample:concert)"
    )


def load_media(
    paths: list[Path],
    *,
    fps: float,
    size: tuple[int, int],
    sample_rate: int | None = None,
    channels: int | None = None,
) -> list[AVClip]:
    """Whole files at the model's fps and frame size (centre crop), audio as stored unless a rate or
    channel count is given."""
    return [
        read_clip(
            p,
            fps=fps,
            size=size,
            resize_mode="crop",
            sample_rate=sample_rate,
            channels=channels,
            allow_silent=True,
        )
        for p in paths
    ]


def split_holdout(clip: AVClip, seconds: float) -> tuple[AVClip, AVClip | None]:
    """``(train, held_out)``: the last ``seconds`` of the clip are held out (None when 0)."""
    n_hold = int(round(seconds * clip.fps))
    if n_hold <= 0:
        return clip, None
    if n_hold >= clip.num_frames:
        raise ValueError(
            f"--holdout-seconds {seconds}: the clip {clip.source} lasts only "
            f"{clip.num_frames / clip.fps:.1f} s; hold out less"
        )
    cut = clip.num_frames - n_hold
    return clip.frames(0, cut), clip.frames(cut, clip.num_frames)


def windows(clip: AVClip, frames: int, stride: int) -> list[AVClip]:
    """Consecutive ``frames``-frame windows (hop ``stride`` frames) with their audio span."""
    return [clip.frames(t, t + frames) for t in range(0, clip.num_frames - frames + 1, stride)]


def evenly(items: list, n: int) -> list:
    """``n`` items spread evenly over the list (all when it is shorter)."""
    if len(items) <= n:
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def stage_dir(root: Path, index: int, stage: Stage) -> Path:
    return Path(root) / f"{index}-{stage.name}"


def _done_marker(d: Path) -> Path:
    return d / "done.json"


def _load_previous(model: nn.Module, prev_dir: Path, *, ema: bool = False) -> None:
    """Load stage k−1's final weights into ``model`` (shapes must match; new modules keep their init).

    ``ema=True`` loads its EMA weights instead (when the checkpoint has them).
    """
    ckpt = CheckpointManager(prev_dir).load(None)
    weights = ckpt.ema if ema and ckpt.ema is not None else ckpt.model
    own = model.state_dict()
    usable = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{prev_dir}: checkpoint shares no weights with this model; same preset?")
    model.load_state_dict(usable, strict=False)


@dataclass(kw_only=True)
class StageHooks:
    """What a model family gives the driver for one stage."""

    data: Any
    step_fn: Any
    evaluate: Any
    artifacts: Any | None
    grad_accum: int


def train_tokenizer(
    cfg: RunConfig, *, tracker: Tracker | None = None, resume: bool = False
) -> tuple[nn.Module, list[StageResult]]:
    """Run every enabled stage of ``cfg.schedule``; returns the final model and per-stage results."""
    import importlib

    family = importlib.import_module(f"avtok.tokenizer.recipes_{cfg.family}")  # model-family specifics
    tracker = tracker or NullTracker()
    info = dist.init_distributed()
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
            _load_previous(model, d)
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
        _load_previous(model, prev, ema=True)
    return model, results


def _finished_steps(d: Path, cfg: RunConfig, stage: Stage, total: float) -> int | None:
    """Steps of a stage that is finished for this config, None when it must (continue to) train.

    Finished = its ``done.json`` exists and it reached this config's step target, or it stopped on a
    wall-clock budget equal to this config's share (a larger ``--max-steps`` or ``--minutes`` continues it).
    """
    marker = _done_marker(d)
    if not marker.exists():
        return None
    info = json.loads(marker.read_text())
    steps = int(info["steps"])
    if steps >= _stage_steps(cfg, stage, total):
        return steps
    if info.get("stop") == "max_minutes" and info.get("minutes") == _stage_minutes(cfg, stage, total):
        return steps
    return None


def _stage_minutes(cfg: RunConfig, stage: Stage, total: float) -> float | None:
    return None if cfg.minutes is None else cfg.minutes * stage.fraction / total


def _stage_steps(cfg: RunConfig, stage: Stage, total: float) -> int:
    return max(1, math.ceil(cfg.max_steps * stage.fraction / total))


def _run_stage(cfg, ctx, family, model, stage, k, d, total, tracker, resume, schedule) -> StageResult:
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
        keep_last=1,
        log_every=max(1, min(20, steps // 5)),
        eval_every=min(cfg.eval_every, steps),
        max_minutes=_stage_minutes(cfg, stage, total),
        progress=cfg.progress,
        strategy=cfg.strategy,
        anneal_to_budget=cfg.anneal_to_budget,
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
    marker = {"steps": summary.steps, "stop": summary.stop_reason, "minutes": tcfg.max_minutes}
    if trainer.info.rank == 0:
        _done_marker(d).write_text(json.dumps(marker))
    dist.barrier()  # the next stage (every rank) reads this stage's checkpoint and marker
    return StageResult(
        name=stage.name,
        steps=summary.steps,
        start_step=summary.start_step,
        checkpoint=summary.checkpoint,
        eval_metrics=dict(summary.eval_metrics),
    )


def l1(a: Tensor, b: Tensor) -> Tensor:
    return (a.float() - b.float()).abs().mean()


def rank_device(device: str, info: dist.DistInfo) -> str:
    """``cuda`` means this rank's GPU (``cuda:<local_rank>``) in a multi-process run; others unchanged."""
    return f"cuda:{info.local_rank}" if device == "cuda" and info.enabled else device


def batch_loader(items: list, *, batch_size: int, seed: int) -> ResumableLoader:
    """Batches of ``batch_size`` in all (at most the item count), split evenly over the ranks.

    With N ranks each takes ``ceil(size / N)`` items of the same shuffled global batch, so a global batch
    that is not a multiple of N is rounded up to one.
    """
    info = dist.dist_info()
    per_rank = max(1, math.ceil(min(batch_size, len(items)) / info.world_size))
    return ResumableLoader(items, batch_size=per_rank, rank=info.rank, world_size=info.world_size, seed=seed)

