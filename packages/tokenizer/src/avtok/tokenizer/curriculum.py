"""Staged training schedules: AToken's curriculum and AVTok's Video-First-Audio-Later (VFAL), as data.

A :class:`Schedule` is a list of :class:`Stage`s. Each stage says which parameter *roles* train and at
what learning-rate multiplier (0 = frozen: ``requires_grad=False`` and no optimizer group), which input
streams / tasks it feeds, its round-robin task ratios, and whether it starts from the previous stage's
checkpoint. :func:`stage_multipliers` turns roles into the runtime's ``TrainConfig.lr_multipliers``
(module-name prefixes); :func:`apply_stage` freezes the rest; :class:`RoundRobinTasks` interleaves task
data sources at integer ratios (smooth weighted round-robin: every cycle of ``sum(ratios)`` draws holds
each task exactly ``ratio`` times) and the stage's ``grad_accum`` is that cycle length, so one optimizer
step sees every task in proportion (AToken §3.4: round-robin sampling balanced by gradient accumulation).

Choices (the seeds leave them open):

* VFAL stage 2 **slows** (×0.1) rather than freezes the shared blocks and the video stream: the joint
  sequence changes what the shared layers see, and a frozen video path could not adapt to it.
* Every stage that starts from a checkpoint trains the encoder side at ×0.1 (the runtime rule "encoder ×0.1
  when initialised from pretrained weights"); VFAL stage 3 fine-tunes the decoders at ×1 on both streams.
* AToken's understanding tasks (V^u, 3D^u) need a text teacher (SigLIP2) and stage 3 needs 3D data; neither
  is available offline, so :func:`available_ratios` drops tasks without data and keeps the paper's ratio
  among the rest (stage 2: I^r:V^r = 22.2 %:66.6 % = 1:3; stage 4: 22.2 %:44.4 % = 1:2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any

from torch import nn

__all__ = [
    "Stage",
    "Schedule",
    "SCHEDULES",
    "AV_ROLES",
    "VISUAL_ROLES",
    "ATOKEN_TASK_RATIOS",
    "get_schedule",
    "stage_multipliers",
    "apply_stage",
    "available_ratios",
    "TaskSampler",
    "RoundRobinTasks",
]

# Parameter roles → module-name prefixes (the runtime's lr_multipliers match the longest prefix).
_AV_STREAM_ENC = ("patch_embed", "enc_in_norm", "enc_out_norm", "latent_queries")
_AV_STREAM_DEC = ("token_pos", "patch_queries", "dec_in_norm", "dec_out_norm", "to_patches")
AV_ROLES: dict[str, tuple[str, ...]] = {
    "video_enc": tuple(f"streams.video.{n}" for n in _AV_STREAM_ENC),
    "video_dec": tuple(f"streams.video.{n}" for n in _AV_STREAM_DEC),
    "audio_enc": tuple(f"streams.audio.{n}" for n in _AV_STREAM_ENC),
    "audio_dec": tuple(f"streams.audio.{n}" for n in _AV_STREAM_DEC),
    "encoder": ("encoder", "to_latent"),  # shared blocks + bottleneck in
    "decoder": ("from_latent", "decoder"),  # bottleneck out + shared blocks
    "align": ("align_head",),
    "prior": ("prior",),
}
VISUAL_ROLES: dict[str, tuple[str, ...]] = {
    "encoder": ("patch_embed", "enc_pos", "encoder", "latent_head", "semantic"),
    "decoder": ("latent_embed", "dec_pos", "decoder", "to_pixels"),
}
# AToken Table 2 (seed 002): I^r, V^u, V^r, 3D^u, 3D^r in percent per stage.
ATOKEN_TASK_RATIOS: dict[str, dict[str, float]] = {
    "image": {"image_rec": 100.0},
    "video": {"image_rec": 22.2, "video_und": 11.1, "video_rec": 66.6},
    "3d": {"image_rec": 22.2, "video_und": 11.1, "video_rec": 44.4, "3d_und": 11.1, "3d_rec": 11.1},
    "fsq": {"image_rec": 22.2, "video_und": 11.1, "video_rec": 44.4, "3d_und": 11.1, "3d_rec": 11.1},
}


@dataclass(kw_only=True, frozen=True)
class Stage:
    """One curriculum stage.

    - ``lr``: role → multiplier (absent or 0 = frozen). ``tasks``: task → sampling weight (percent or
      integer; reduced to small integers). ``fraction``: its share of the run's steps / minutes.
    - ``init``: ``"scratch"`` (first stage) or ``"previous"`` (load stage k−1's final checkpoint).
    - ``use_fsq``: visual tokenizer switches to FSQ latents (AToken stage 4). ``enabled``: False for stages
      that need data this toolkit cannot get offline (AToken's 3D stage); they are listed but skipped.
    """

    name: str
    lr: Mapping[str, float]
    tasks: Mapping[str, float]
    fraction: float
    init: str = "scratch"
    use_fsq: bool = False
    enabled: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if self.init not in ("scratch", "previous"):
            raise ValueError(f"Stage {self.name}: init={self.init!r}; use 'scratch' or 'previous'")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"Stage {self.name}: fraction={self.fraction} must lie in (0, 1]")


@dataclass(kw_only=True, frozen=True)
class Schedule:
    """A named list of stages for one model family (``"av"`` or ``"visual"``)."""

    name: str
    family: str
    stages: tuple[Stage, ...]
    description: str = ""

    @property
    def active(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.enabled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "stages": {
                s.name: {
                    "lr": dict(s.lr),
                    "tasks": dict(s.tasks),
                    "fraction": s.fraction,
                    "init": s.init,
                    "use_fsq": s.use_fsq,
                    "enabled": s.enabled,
                }
                for s in self.stages
            },
        }


_ALL_AV = ("video_enc", "video_dec", "audio_enc", "audio_dec", "encoder", "decoder")
_VFAL = Schedule(
    name="vfal",
    family="av",
    description="AVTok Video-First-Audio-Later",
    stages=(
        Stage(
            name="video",
            fraction=0.4,
            tasks={"video": 1},
            lr={"video_enc": 1.0, "video_dec": 1.0, "encoder": 1.0, "decoder": 1.0, "prior": 1.0},
            note="the video stream alone (+ the AR prior over its tokens)",
        ),
        Stage(
            name="audio",
            fraction=0.35,
            init="previous",
            tasks={"av": 1},
            lr={
                "audio_enc": 1.0,
                "audio_dec": 1.0,
                "encoder": 0.1,
                "decoder": 0.1,
                "video_enc": 0.1,
                "video_dec": 0.1,
                "prior": 1.0,
            },
            note="attach + train the audio modules (+ the AR prior); shared blocks, video stream x0.1",
        ),
        Stage(
            name="decoders",
            fraction=0.25,
            init="previous",
            tasks={"av": 1},
            lr={
                "video_dec": 1.0,
                "audio_dec": 1.0,
                "decoder": 1.0,
                "encoder": 0.1,
                "video_enc": 0.1,
                "audio_enc": 0.1,
                "prior": 1.0,
            },
            note="fine-tune the decoders on both streams; encoder side x0.1 (from a checkpoint); AR prior",
        ),
    ),
)
_VANILLA = Schedule(
    name="vanilla",
    family="av",
    description="joint training from scratch (ablation)",
    stages=(Stage(name="joint", fraction=1.0, tasks={"av": 1}, lr=dict.fromkeys((*_ALL_AV, "prior"), 1.0)),),
)
_ATOKEN = Schedule(
    name="atoken",
    family="visual",
    description="AToken 4-stage curriculum",
    stages=(
        Stage(
            name="image",
            fraction=0.4,
            tasks=ATOKEN_TASK_RATIOS["image"],
            lr={"encoder": 1.0, "decoder": 1.0},
            note="image reconstruction (the paper starts the encoder from SigLIP2; here from scratch, x1)",
        ),
        Stage(
            name="video",
            fraction=0.35,
            init="previous",
            tasks=ATOKEN_TASK_RATIOS["video"],
            lr={"encoder": 0.1, "decoder": 1.0},
            note="+ video (round-robin with images)",
        ),
        Stage(
            name="3d",
            fraction=0.1,
            init="previous",
            tasks=ATOKEN_TASK_RATIOS["3d"],
            enabled=False,
            lr={"encoder": 0.1, "decoder": 1.0},
            note="+ 3D: needs 3D assets (Gaussian splats), skipped",
        ),
        Stage(
            name="fsq",
            fraction=0.25,
            init="previous",
            tasks=ATOKEN_TASK_RATIOS["fsq"],
            use_fsq=True,
            lr={"encoder": 0.1, "decoder": 1.0},
            note="+ FSQ discrete tokens, encoder and decoder fine-tuned",
        ),
    ),
)
_VISUAL_PLAIN = Schedule(
    name="plain",
    family="visual",
    description="one stage, images + video",
    stages=(
        Stage(
            name="joint",
            fraction=1.0,
            tasks={"image_rec": 1, "video_rec": 3},
            lr={"encoder": 1.0, "decoder": 1.0},
        ),
    ),
)
SCHEDULES: dict[str, Schedule] = {s.name: s for s in (_VFAL, _VANILLA, _ATOKEN, _VISUAL_PLAIN)}


def get_schedule(name: str, *, family: str | None = None) -> Schedule:
    """A schedule by name; ``family`` ("av" / "visual") checks it fits the model."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; use one of {sorted(SCHEDULES)}")
    sched = SCHEDULES[name]
    if family is not None and sched.family != family:
        fits = sorted(k for k, s in SCHEDULES.items() if s.family == family)
        raise ValueError(f"schedule {name!r} is for the {sched.family} tokenizer; for {family} use {fits}")
    return sched


def _roles_for(model: nn.Module) -> dict[str, tuple[str, ...]]:
    return AV_ROLES if hasattr(model, "streams") else VISUAL_ROLES


def stage_multipliers(model: nn.Module, stage: Stage) -> dict[str, float]:
    """``TrainConfig.lr_multipliers`` for the stage: every role's prefixes → its multiplier (0 = frozen)."""
    roles = _roles_for(model)
    unknown = set(stage.lr) - set(roles)
    if unknown:
        raise ValueError(f"Stage {stage.name}: unknown roles {sorted(unknown)}; roles are {sorted(roles)}")
    top = {n for n, _ in model.named_parameters()}
    out: dict[str, float] = {}
    for role, prefixes in roles.items():
        for prefix in prefixes:
            if any(n == prefix or n.startswith(prefix + ".") for n in top):
                out[prefix] = float(stage.lr.get(role, 0.0))
    return out


def apply_stage(model: nn.Module, stage: Stage) -> dict[str, float]:
    """Freeze every parameter whose multiplier is 0 (or that no role covers); returns the multipliers
    for the trainable ones (what goes into ``TrainConfig.lr_multipliers``)."""
    mults = stage_multipliers(model, stage)
    for name, p in model.named_parameters():
        matches = [k for k in mults if name == k or name.startswith(k + ".")]
        scale = mults[max(matches, key=len)] if matches else 0.0
        p.requires_grad_(scale > 0)
    return {k: v for k, v in mults.items() if v > 0 and v != 1.0}


def available_ratios(tasks: Mapping[str, float], have: set[str] | frozenset[str]) -> dict[str, int]:
    """The stage's task weights restricted to tasks with data, reduced to the smallest integer ratio."""
    kept = {k: v for k, v in tasks.items() if k in have and v > 0}
    if not kept:
        raise ValueError(f"no task of {sorted(tasks)} has data (have {sorted(have)}); provide one of them")
    smallest = min(kept.values())
    ints = {k: max(1, round(v / smallest)) for k, v in kept.items()}
    g = reduce(math.gcd, ints.values())
    return {k: v // g for k, v in ints.items()}


class TaskSampler:
    """Smooth weighted round-robin over integer ratios (deterministic; exact within every cycle)."""

    def __init__(self, ratios: Mapping[str, int]) -> None:
        bad = {k: v for k, v in ratios.items() if not (isinstance(v, int) and v >= 1)}
        if not ratios or bad:
            raise ValueError(f"TaskSampler: ratios must be positive integers, got {dict(ratios)}")
        self.ratios = dict(ratios)
        self.total = sum(self.ratios.values())
        self.current = dict.fromkeys(self.ratios, 0)
        self.draws = 0

    def __next__(self) -> str:
        for k, w in self.ratios.items():
            self.current[k] += w
        task = max(self.current, key=lambda k: self.current[k])  # ties: first in insertion order
        self.current[task] -= self.total
        self.draws += 1
        return task

    def state_dict(self) -> dict[str, Any]:
        return {"current": dict(self.current), "draws": self.draws}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.current, self.draws = dict(state["current"]), int(state["draws"])


@dataclass
class RoundRobinTasks:
    """A runtime ``DataSource`` interleaving per-task sources: yields ``{"task": name, "batch": batch}``."""

    sources: Mapping[str, Any]
    ratios: Mapping[str, int]
    sampler: TaskSampler = field(init=False)

    def __post_init__(self) -> None:
        missing = set(self.ratios) - set(self.sources)
        if missing:
            raise ValueError(f"RoundRobinTasks: no data source for tasks {sorted(missing)}")
        self.sampler = TaskSampler(self.ratios)

    @property
    def cycle(self) -> int:
        """Draws per round-robin cycle: the gradient-accumulation count that balances the tasks."""
        return self.sampler.total

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        task = next(self.sampler)
        return {"task": task, "batch": next(self.sources[task])}

    def state_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler.state_dict(),
            "sources": {k: self.sources[k].state_dict() for k in self.ratios},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        for k, s in state["sources"].items():
            self.sources[k].load_state_dict(s)


def with_fraction(stage: Stage, fraction: float) -> Stage:
    """A copy of ``stage`` with another budget share (used when stages are disabled)."""
    return replace(stage, fraction=fraction)
