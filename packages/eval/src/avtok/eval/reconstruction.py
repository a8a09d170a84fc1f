"""evaluate_reconstruction: score a Reconstructor (and the baselines beside it) over a clip dataset."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from avtok.eval.baselines import default_baselines
from avtok.eval.clip_metrics import ClipMetricsConfig, clip_metrics
from avtok.eval.frechet import FrechetStats, frechet_distance
from avtok.eval.protocols import Reconstructor, TokenizerReconstructor
from avtok.eval.tokens import ThroughputMeter, token_stats
from avtok.media_io import AVClip

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl

__all__ = ["ReconstructionConfig", "ReconstructionReport", "evaluate_reconstruction"]


@dataclass(kw_only=True, frozen=True)
class ReconstructionConfig:
    """What to compute. Set metrics (frame FID, FAD) are off by default: they need many clips."""

    metrics: ClipMetricsConfig = field(default_factory=ClipMetricsConfig)
    baselines: bool = True
    frame_fid: bool = False
    fad: bool = False
    frame_stride: int = 1  # frame FID uses every frame_stride-th frame of each clip
    max_clips: int | None = None
    codebook_size: int | None = None  # token statistics when the model exposes integer indices
    num_groups: int = 1
    device: str = "cpu"


@dataclass(kw_only=True, frozen=True)
class ReconstructionReport:
    """``per_clip``: one row per (model, clip); ``summary``: one row per model (means, set metrics, speed)."""

    per_clip: pl.DataFrame
    summary: pl.DataFrame


class _SetMetrics:
    """Streams frames (Inception) and audio (aiSFX) of every model and of the references."""

    def __init__(self, cfg: ReconstructionConfig) -> None:
        self.cfg = cfg
        self.inception = self.aisfx = None
        if cfg.frame_fid:
            from avtok.eval.inception import FEATURE_DIM, InceptionFeatures

            self.inception, self.fdim = InceptionFeatures(device=cfg.device), FEATURE_DIM
        if cfg.fad:
            from avtok.eval.audio_embedding import EMBED_DIM, AisfxEmbedder

            self.aisfx, self.adim = AisfxEmbedder(device=cfg.device), EMBED_DIM
        self.frames: dict[str, FrechetStats] = {}
        self.audio: dict[str, FrechetStats] = {}
        self._ref: tuple[torch.Tensor, torch.Tensor] | None = None  # the current reference's (video, features)

    def add(self, key: str, clip: AVClip) -> None:
        if self.inception is not None:
            acc = self.frames.setdefault(key, FrechetStats(self.fdim, name=f"{key} frames"))
            feats = self._frame_features(clip.video)
            if key == "reference":
                self._ref = (clip.video, feats)
            acc.update(feats)
        if self.aisfx is not None:
            acc = self.audio.setdefault(key, FrechetStats(self.adim, name=f"{key} audio"))
            acc.update(self.aisfx(clip.audio, clip.sample_rate))

    def _frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """Inception features of every ``frame_stride``-th frame (uint8, converted per batch). The
        reference's own tensor (the identity baseline) reuses its features; a held frame (a
        stride-0 view, as the mean / first-frame baselines give) is run once and repeated: Inception in
        eval mode maps equal frames to equal features, so the statistics are those of running every frame."""
        frames = video[:: self.cfg.frame_stride]
        if self._ref is not None and self._ref[0] is video:
            return self._ref[1]
        if frames.shape[0] > 1 and frames.stride(0) == 0:
            return self.inception(frames[:1]).expand(frames.shape[0], -1)
        return self.inception(frames)

    def release_reference(self) -> None:
        self._ref = None

    def scores(self, key: str) -> dict[str, float]:
        out = {}
        if self.inception is not None:
            out["frame_fid"] = frechet_distance(self.frames[key].compute(), self.frames["reference"].compute())
        if self.aisfx is not None:
            out["fad"] = frechet_distance(self.audio[key].compute(), self.audio["reference"].compute())
        return out


def _clip_name(clip: AVClip, i: int) -> str:
    if clip.source is None:
        return f"clip{i:05d}"
    return f"{Path(clip.source).name}@{clip.start:.2f}s"


def _as_reconstructor(model) -> Reconstructor:
    if isinstance(model, Reconstructor):
        return model
    return TokenizerReconstructor(model)  # raises a clear TypeError when it is neither


def evaluate_reconstruction(
    model, dataset: Iterable[AVClip], *, cfg: ReconstructionConfig | None = None
) -> ReconstructionReport:
    """Reconstruct every clip with ``model`` (a Reconstructor or an encode/decode Tokenizer) and score it.

    The identity, mean-frame+silence and repeat-first-frame baselines are scored on the same clips
    (``cfg.baselines``), so every number is read next to its upper and trivial lower bounds.
    """
    import polars as pl  # only for the result table (GPU images ship without polars)

    cfg = cfg or ReconstructionConfig()
    model = _as_reconstructor(model)
    baselines = [b for b in default_baselines() if b.name != model.name] if cfg.baselines else []
    models = [model] + baselines  # a baseline passed as the model is scored once
    meters = {m.name: ThroughputMeter(cfg.device) for m in models}
    indices: list = []
    sets = _SetMetrics(cfg)
    rows: list[dict] = []
    for i, clip in enumerate(dataset):
        if cfg.max_clips is not None and i >= cfg.max_clips:
            break
        if not isinstance(clip, AVClip):
            raise TypeError(f"dataset item {i}: expected an AVClip, got {type(clip).__name__}")
        sets.add("reference", clip)
        for m in models:
            out = meters[m.name].time(m.reconstruct, clip)
            last = getattr(m, "last_indices", None)
            if m is model and last is not None:
                indices.append(last)
            rows.append({"model": m.name, "clip": _clip_name(clip, i), "clip_index": i,
                         **clip_metrics(out, clip, cfg.metrics)})
            sets.add(m.name, out)
        sets.release_reference()  # the clip's frames may be freed now (long clips are scored in segments)
    if not rows:
        raise ValueError("dataset: no clips; point it at a folder or list holding at least one clip")
    per_clip = pl.DataFrame(rows)
    summary = _summary(per_clip, models, meters, sets, indices, cfg)
    return ReconstructionReport(per_clip=per_clip, summary=summary)


def _summary(per_clip, models, meters, sets, indices, cfg) -> pl.DataFrame:
    import polars as pl  # only for the result table (GPU images ship without polars)

    metric_cols = [c for c in per_clip.columns if c not in ("model", "clip", "clip_index")]
    means = per_clip.group_by("model", maintain_order=True).agg(
        pl.len().alias("clips"), *[pl.col(c).mean() for c in metric_cols]
    )
    extra = []
    for m in models:
        tp = meters[m.name].result()
        row = {"model": m.name, "clips_per_s": tp.clips_per_s, **sets.scores(m.name)}
        if m is models[0] and indices and cfg.codebook_size:
            stats = token_stats(indices, codebook_size=cfg.codebook_size, num_groups=cfg.num_groups)
            row.update(stats.as_metrics())
            row["tokens_per_s"] = stats.num_tokens / max(tp.seconds, 1e-12)
        if m is models[0]:
            row[f"peak_mem_mb_{tp.memory_kind}"] = tp.peak_memory_mb
        extra.append(row)
    return means.join(pl.DataFrame(extra), on="model", how="left")
