"""avtok.train: the one model-agnostic training runtime of avtok, used by every model family.

Runtime: :class:`TrainConfig` → :class:`Trainer` (AdamW + warmup-cosine, per-module lr multipliers, EMA,
accumulation, clipping, bf16 autocast on CUDA, NaN guard, DDP / FSDP2, atomic resumable checkpoints,
tracking, progress bar, summary), plus what every family shares: ``save_pretrained`` / ``from_pretrained``
(:mod:`.pretrained`) and the transformer building blocks (:mod:`.transformer`). Model-specific losses stay
with their models (``avtok.tokenizer.losses``).
"""

from avtok.train.__about__ import __version__
from avtok.train.checkpoint import (
    Checkpoint,
    CheckpointManager,
    CorruptCheckpointError,
    capture_rng,
    restore_rng,
)
from avtok.train.config import TrainConfig, flatten_config
from avtok.train.data import DataSource, ResumableLoader, SkipAheadIterator
from avtok.train.distributed import DistInfo, init_distributed, wrap_model
from avtok.train.ema import EMA
from avtok.train.optim import build_optimizer, build_scheduler, param_groups, warmup_cosine
from avtok.train.run_folder import RunFolderError, claim_run_folder
from avtok.train.summary import TrainSummary
from avtok.train.trainer import ArtifactsFn, EvaluateFn, MetricsFn, StepFn, Trainer, TrainingDiverged

__all__ = [
    "__version__",
    "EMA", "ArtifactsFn", "Checkpoint", "CheckpointManager", "CorruptCheckpointError", "DataSource",
    "DistInfo", "EvaluateFn",
    "MetricsFn", "ResumableLoader", "SkipAheadIterator", "StepFn", "TrainConfig", "TrainSummary", "Trainer",
    "build_optimizer", "build_scheduler", "capture_rng", "flatten_config", "init_distributed",
    "param_groups", "restore_rng", "warmup_cosine", "wrap_model", "RunFolderError", "claim_run_folder",
    "TrainingDiverged",
]
