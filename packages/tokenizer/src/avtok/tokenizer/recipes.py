"""What every tokenizer family recipe shares: the run config, real-clip data helpers, the hooks a family gives
the staged-run driver (:mod:`avtok.tokenizer.runner`) and the batch loader.

``avtok.tokenizer.runner.train_tokenizer(cfg)`` runs a :class:`~avtok.tokenizer.curriculum.Schedule` with the shared runtime
(``avtok.train.Trainer``): one Trainer per stage, each in ``checkpoint_dir/<k>-<stage>``;
stage k loads stage k−1's final weights (model + buffers) before training, and a ``done.json`` marker per
finished stage lets ``resume=True`` skip finished stages and continue the interrupted one bit-exactly.
The model it returns (and ``avtok-tokenizer train`` saves as ``final/``) holds the last stage's EMA
weights — the weights every held-out evaluation during training scored. With ``minutes`` the cosine
schedule of each stage ends where its share of the budget runs out (``TrainConfig.anneal_to_budget``).

Multi-process: under ``torchrun --nproc-per-node N`` the driver joins the process group
(``init_distributed``: gloo on CPU, nccl on CUDA, one GPU per local rank), the recipes stream their windows
through :mod:`avtok.tokenizer.window_data` (each rank decodes its own readers' files; with a fixed
``data_readers`` N ranks see exactly what one process sees), the runtime wraps the model in DDP, and rank 0 alone writes checkpoints, stage
markers and logs. A single process without torchrun's variables runs undistributed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from avtok.media_io.window_plan import DataStats
from avtok.tokenizer.curriculum import get_schedule
from avtok.train import ResumableLoader
from avtok.train import distributed as dist
from avtok.train.trainer import ArtifactsFn, EvaluateFn, StepFn

__all__ = [
    "RunConfig",
    "StageResult",
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
    lr: float | None = None  # peak lr; None: the preset's (DEFAULT_LR), resolved on construction
    warmup_steps: int = 50
    eval_every: int = 200
    eval_windows: int = 16
    data_readers: int | None = None  # decoding streams over all ranks (None: one per rank); see window_data
    data_cache_mb: float = 1024.0  # decoded windows kept per reader (later epochs skip decoding; 0: off)
    checkpoint_dir: Path = Path("runs/tokenizer")
    device: str = "cpu"
    strategy: str = "auto"  # "auto" (DDP under torchrun), "ddp", "fsdp2" (shards the transformer blocks)
    anneal_to_budget: bool = True  # with minutes: each stage's cosine ends where its budget runs out
    seed: int = 0
    gram: bool = True  # Gram term of the reconstruction loss (ablation: --no-gram)
    perceptual: bool = True  # Inception perceptual + Gram terms on images / AV frames (off: L1 only)
    mrstft: bool = True  # AV: multi-resolution STFT through the frozen HiFi-GAN vocoder
    ar_prior_weight: float = 0.01  # AV: AR-prior CE weight (LARP's 0.06 cost 1.1 dB here, README; 0 = off)
    # AV: TorchScript (video, wave) -> (video, audio) features (REPA term); executable code, so only
    # files the user exported or trusts
    align_teacher: str | None = None
    image_size: int = 64  # visual: frame side
    mel_images: bool = False  # visual: also train on log-mels as grey images (avtok.tokenizer.mel_image)
    init: str | None = None  # visual: start every stage from this model folder (e.g. converted AToken)
    distill_weight: float = 1.0  # visual with init: semantic distillation to the frozen initial model
    artifacts: bool = True
    progress: bool = False
    max_nonfinite_steps: int = 20  # divergence guard: this many non-finite steps in a row stop the run

    # Peak learning rates that differ from 1e-3. AV ``tiny`` (width 64) at 3e-3: the default 2000-step CPU
    # run's whole held-out tail went from 19.98 dB (1e-3, below the mean frame's 20.08) to 21.17 dB
    # (docs/evidence/tokenizer.md, "Default CPU run").
    DEFAULT_LR = {("av", "tiny"): 3e-3}

    def __post_init__(self) -> None:
        self.checkpoint_dir = Path(self.checkpoint_dir)
        if self.lr is None:
            self.lr = self.DEFAULT_LR.get((self.family, self.preset), 1e-3)
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
        if self.init is not None and (self.family != "visual"
                                      or not (Path(self.init) / "config.json").is_file()):
            raise ValueError(f"--init {self.init}: needs a visual model folder with config.json (e.g. "
                             "written by `avtok-tokenizer convert --from atoken`)")
        if self.strategy not in ("auto", "none", "ddp", "fsdp2"):
            raise ValueError(f"RunConfig.strategy={self.strategy!r}: use auto, none, ddp or fsdp2")
        if min(self.holdout_seconds, self.ar_prior_weight) < 0 or min(self.max_steps, self.batch_size) < 1:
            raise ValueError("RunConfig: holdout_seconds and ar_prior_weight must be >= 0, max_steps and "
                             "batch_size >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}

    # how long, where and how visibly a run trains: a resumed run may change these (not its identity)
    RUNTIME_FIELDS = ("minutes", "max_steps", "eval_every", "eval_windows", "checkpoint_dir", "device",
                      "strategy", "anneal_to_budget", "artifacts", "progress", "max_nonfinite_steps",
                      "data_cache_mb")

    def identity(self) -> dict[str, Any]:
        """The fields that define the model and what it learns (the run folder's identity, ``run.json``)."""
        out = {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME_FIELDS}
        if not self.data.startswith("sample:"):
            out["data"] = str(Path(self.data).resolve())
        return out

    def summary(self) -> str:
        return f"tokenizer {self.preset}-{self.family} {self.schedule} on {self.data}"


@dataclass(kw_only=True)
class StageResult:
    name: str
    steps: int
    start_step: int = 0
    checkpoint: Path | None
    eval_metrics: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


def evenly(items: list, n: int) -> list:
    """``n`` items spread evenly over the list (all when it is shorter)."""
    if len(items) <= n:
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


@dataclass(kw_only=True)
class StageHooks:
    """What a model family gives the driver for one stage."""

    data: ResumableLoader  # batches of this family's items (a Trainer data source)
    step_fn: StepFn  # (model, batch) -> losses/metrics
    evaluate: EvaluateFn  # (model) -> held-out metrics
    artifacts: ArtifactsFn | None  # (model, out_dir) -> files to log
    grad_accum: int
    data_stats: Callable[[], DataStats] | None = None  # the streamed data's skip / adjustment counts


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

