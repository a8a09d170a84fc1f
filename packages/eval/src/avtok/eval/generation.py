"""evaluate_generation: set-level scores of generated clips against reference clips."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from avtok.eval.av_sync import onset_alignment
from avtok.eval.folders import iter_clips
from avtok.eval.frechet import FrechetStats, frechet_distance
from avtok.media_io import AVClip

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl

__all__ = ["GenerationConfig", "evaluate_generation"]

ClipSource = Iterable[AVClip] | str | Path


@dataclass(kw_only=True, frozen=True)
class GenerationConfig:
    """Frame FID (Inception), FAD (aiSFX), onset alignment; FVD only with ``i3d_path``."""

    frame_fid: bool = True
    fad: bool = True
    av_sync: bool = True
    i3d_path: str | None = None
    frame_stride: int = 1
    device: str = "cpu"


class _Accumulators:
    def __init__(self, cfg: GenerationConfig) -> None:
        self.cfg = cfg
        self.inception = self.aisfx = self.i3d = None
        if cfg.frame_fid:
            from avtok.eval.inception import InceptionFeatures

            self.inception = InceptionFeatures(device=cfg.device)
        if cfg.fad:
            from avtok.eval.audio_embedding import AisfxEmbedder

            self.aisfx = AisfxEmbedder(device=cfg.device)
        if cfg.i3d_path is not None:
            from avtok.eval.fvd import I3DFeatures

            self.i3d = I3DFeatures(cfg.i3d_path, device=cfg.device)
        self.stats: dict[tuple[str, str], FrechetStats] = {}
        self.sync: dict[str, list[float]] = {}
        self.loudness: dict[str, list[float]] = {}
        self.count: dict[str, int] = {}

    def _acc(self, key: tuple[str, str], feats) -> None:
        acc = self.stats.setdefault(key, FrechetStats(feats.shape[1], name=f"{key[0]} {key[1]}"))
        acc.update(feats)

    def add(self, which: str, clip: AVClip) -> None:
        if not isinstance(clip, AVClip):
            raise TypeError(f"{which}: expected AVClip items, got {type(clip).__name__}")
        self.count[which] = self.count.get(which, 0) + 1
        if self.inception is not None:
            self._acc((which, "frames"), self.inception(clip.video[:: self.cfg.frame_stride]))
        if self.aisfx is not None:
            self._acc((which, "audio"), self.aisfx(clip.audio, clip.sample_rate))
        if self.i3d is not None:
            self._acc((which, "i3d"), self.i3d(clip.video_float()))
        if self.cfg.av_sync:
            r = onset_alignment(clip.video_float(), clip.fps, clip.audio, clip.sample_rate)
            self.sync.setdefault(which, []).append(r.score)
            self.loudness.setdefault(which, []).append(r.loudness_correlation)

    def distance(self, kind: str) -> float:
        return frechet_distance(self.stats[("generated", kind)].compute(), self.stats[("reference", kind)].compute())


def _clips(source: ClipSource, name: str) -> Iterable[AVClip]:
    if isinstance(source, (str, Path)):
        return iter_clips(source, name=name)
    return source


def evaluate_generation(generated: ClipSource, references: ClipSource, *,
                        cfg: GenerationConfig | None = None) -> pl.DataFrame:
    """One row per set: ``generated`` (distances to the references) and ``reference`` (its own sync score).

    generated, references: lists of AVClips or folders of clips. Columns: clips, frame_fid, fad,
    fvd (only with ``cfg.i3d_path``), av_onset_align (mean per-clip ``onset_alignment(...).score``: onset
    peak IoU, onset and loudness correlations with motion, averaged) and av_loudness_motion (mean
    per-clip loudness-motion correlation alone: the component validated on real footage shifted by known
    offsets, see ``avtok.eval.av_sync``).
    """
    import polars as pl  # only for the result table (GPU images ship without polars)

    cfg = cfg or GenerationConfig()
    acc = _Accumulators(cfg)
    for which, source in (("generated", generated), ("reference", references)):
        for clip in _clips(source, which):
            acc.add(which, clip)
        if acc.count.get(which, 0) == 0:
            raise ValueError(f"{which}: no clips given; pass a non-empty list or folder")
    rows = []
    for which in ("generated", "reference"):
        row: dict[str, float | str | int] = {"set": which, "clips": acc.count[which]}
        for col, kind, on in (("frame_fid", "frames", acc.inception), ("fad", "audio", acc.aisfx),
                              ("fvd", "i3d", acc.i3d)):
            if on is not None:
                row[col] = acc.distance(kind) if which == "generated" else 0.0
        if cfg.av_sync:
            sync = {"av_onset_align": acc.sync[which], "av_loudness_motion": acc.loudness[which]}
            for col, scores in sync.items():
                row[col] = sum(scores) / len(scores) if scores else math.nan
        rows.append(row)
    return pl.DataFrame(rows)
