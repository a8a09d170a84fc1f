"""avtok.tokenizer.training: the one training runtime (reused by avtok-generator) and tokenizer losses.

Runtime: :class:`TrainConfig` → :class:`Trainer` (AdamW + warmup-cosine, per-module lr multipliers, EMA,
accumulation, clipping, bf16 autocast on CUDA, NaN guard, DDP / FSDP2, atomic resumable checkpoints,
tracking, progress bar, summary). Losses live in :mod:`.losses` and :mod:`.perceptual`.
"""

from avtok.tokenizer.training.checkpoint import Checkpoint, CheckpointManager, capture_rng, restore_rng
from avtok.tokenizer.training.config import TrainConfig, flatten_config
from avtok.tokenizer.training.data import DataSource, ResumableLoader, SkipAheadIterator
from avtok.tokenizer.training.distributed import DistInfo, init_distributed, wrap_model
from avtok.tokenizer.training.ema import EMA
from avtok.tokenizer.training.optim import build_optimizer, build_scheduler, param_groups, warmup_cosine
from avtok.tokenizer.training.summary import TrainSummary
from avtok.tokenizer.training.trainer import ArtifactsFn, EvaluateFn, MetricsFn, StepFn, Trainer

__all__ = [
    "EMA", "ArtifactsFn", "Checkpoint", "CheckpointManager", "DataSource", "DistInfo", "EvaluateFn",
    "MetricsFn", "ResumableLoader", "SkipAheadIterator", "StepFn", "TrainConfig", "TrainSummary", "Trainer",
    "build_optimizer", "build_scheduler", "capture_rng", "flatten_config", "init_distributed",
    "param_groups", "restore_rng", "warmup_cosine", "wrap_model",
]
