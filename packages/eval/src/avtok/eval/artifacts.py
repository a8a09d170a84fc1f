"""Artifacts for reports: metric tables (CSV), side-by-side frame strips and spectrogram PNGs, short mp4s."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torchaudio.functional as AF
from PIL import Image

from avtok.eval.tracking import Tracker
from avtok.media_io import AVClip

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl

__all__ = ["frame_strip_png", "spectrogram_png", "short_mp4", "write_table", "log_report"]


def frame_strip_png(reference: AVClip, reconstruction: AVClip, path: str | Path, *, num_frames: int = 6) -> Path:
    """Reference frames (top row) above the reconstruction's (bottom row), ``num_frames`` evenly spaced."""
    t = reference.num_frames
    idx = torch.linspace(0, t - 1, min(num_frames, t)).round().long()
    top = torch.cat(list(reference.video[idx]), dim=1)  # (H, n*W, 3)
    bottom = torch.cat(list(reconstruction.video[idx]), dim=1)
    Image.fromarray(torch.cat([top, bottom], dim=0).numpy()).save(path)
    return Path(path)


def _log_mel_image(audio: torch.Tensor, sample_rate: int) -> np.ndarray:
    from avtok.media_io import MelConfig, log_mel

    cfg = MelConfig()
    mono = audio.float().mean(0)
    if sample_rate != cfg.sample_rate:
        mono = AF.resample(mono, sample_rate, cfg.sample_rate)
    mel = log_mel(mono, cfg)  # (80, frames)
    lo, hi = float(mel.amin()), float(mel.amax())
    img = ((mel - lo) / max(hi - lo, 1e-6) * 255).round().to(torch.uint8).flip(0)  # low bands at the bottom
    return img.numpy()


def spectrogram_png(path: str | Path, *audios: tuple[torch.Tensor, int]) -> Path:
    """Log-mel spectrograms (greyscale, low bands at the bottom) of each (audio (C, N), rate), stacked."""
    if not audios:
        raise ValueError("spectrogram_png: pass at least one (audio, sample_rate) pair")
    rows = [_log_mel_image(a, sr) for a, sr in audios]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]))) for r in rows]
    Image.fromarray(np.concatenate(rows, 0)).save(path)
    return Path(path)


def short_mp4(clip: AVClip, path: str | Path, *, seconds: float = 4.0) -> Path:
    """The first ``seconds`` of ``clip`` as an mp4 (h264 + AAC) via avtok.media_io.write_clip."""
    from avtok.media_io import write_clip

    frames = max(1, min(clip.num_frames, round(seconds * clip.fps)))
    samples = round(frames / clip.fps * clip.sample_rate)
    short = AVClip(video=clip.video[:frames], audio=clip.audio[:, :samples].contiguous(), fps=clip.fps,
                   sample_rate=clip.sample_rate, start=clip.start, source=clip.source)
    return write_clip(path, short)


def write_table(df: pl.DataFrame, path: str | Path) -> Path:
    """CSV of a metric table (inf as 'inf')."""
    df.write_csv(path)
    return Path(path)


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", name).strip("_")


def log_report(tracker: Tracker, summary: pl.DataFrame, out_dir: str | Path, *,
               per_clip: pl.DataFrame | None = None, key: str = "model") -> None:
    """Log every numeric cell of ``summary`` as ``<row>/<column>`` and both tables as CSV artifacts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float] = {}
    numeric = [c for c, t in summary.schema.items() if t.is_numeric() and c != key]
    for row in summary.iter_rows(named=True):
        for col in numeric:
            if row[col] is not None:
                metrics[f"{_slug(str(row[key]))}/{col}"] = float(row[col])
    tracker.log_metrics(metrics)
    tracker.log_artifact(write_table(summary, out / "summary.csv"), artifact_path="tables")
    if per_clip is not None:
        tracker.log_artifact(write_table(per_clip, out / "per_clip.csv"), artifact_path="tables")
