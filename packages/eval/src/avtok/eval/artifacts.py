"""Artifacts for reports: metric tables (CSV), side-by-side frame strips and spectrogram PNGs, short mp4s."""

from __future__ import annotations

import math
import re
import tempfile
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torchaudio.functional as AF
from PIL import Image

from avtok.eval.tracking import Tracker
from avtok.media_io import AVClip

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl

__all__ = ["frame_strip_png", "spectrogram_png", "log_mel_db", "shared_db_limits", "short_mp4", "write_table",
           "log_report", "log_html_folder"]


def frame_strip_png(reference: AVClip, reconstruction: AVClip, path: str | Path, *, num_frames: int = 6) -> Path:
    """Reference frames (top row) above the reconstruction's (bottom row), ``num_frames`` evenly spaced."""
    t = reference.num_frames
    idx = torch.linspace(0, t - 1, min(num_frames, t)).round().long()
    top = torch.cat(list(reference.video[idx]), dim=1)  # (H, n*W, 3)
    bottom = torch.cat(list(reconstruction.video[idx]), dim=1)
    Image.fromarray(torch.cat([top, bottom], dim=0).numpy()).save(path)
    return Path(path)


def log_mel_db(audio: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Log-mel of ``audio`` (C, N) in dB re. amplitude 1 (80, frames), the filters' centre frequencies in Hz
    (80,) and the frame rate (frames / s), on avtok.media_io's HiFi-GAN mel (22.05 kHz, mono)."""
    from avtok.media_io import MelConfig, log_mel, mel_basis

    cfg = MelConfig()
    mono = audio.float().mean(0)
    if sample_rate != cfg.sample_rate:
        mono = AF.resample(mono, sample_rate, cfg.sample_rate)
    db = log_mel(mono, cfg) * (20.0 / math.log(10.0))  # ln(amplitude) -> 20 log10(amplitude)
    centres = mel_basis(cfg).argmax(1).float() * cfg.sample_rate / cfg.n_fft  # (n_mels,) peak of each filter
    return db, centres, cfg.sample_rate / cfg.hop_length


def shared_db_limits(mels: list[torch.Tensor], *, db_range: float = 80.0) -> tuple[float, float]:
    """One colour scale for every spectrogram of a figure: the loudest bin of all of them at the top,
    ``db_range`` below it at the bottom (so a quieter output looks quieter)."""
    top = max(float(m.amax()) for m in mels)
    return top - db_range, top


def spectrogram_png(path: str | Path, *audios: tuple[torch.Tensor, int], labels: list[str] | None = None,
                    db_range: float = 80.0) -> Path:
    """Log-mel spectrograms of each (audio (C, N), rate), one row each, on ONE shared dB colour scale
    (:func:`shared_db_limits`), with time (s) and frequency (Hz) axes and a colour bar."""
    if not audios:
        raise ValueError("spectrogram_png: pass at least one (audio, sample_rate) pair")
    if labels is not None and len(labels) != len(audios):
        raise ValueError(f"spectrogram_png: {len(labels)} labels for {len(audios)} audios; pass one per audio")
    from matplotlib.figure import Figure

    mels = [log_mel_db(a, sr) for a, sr in audios]
    vmin, vmax = shared_db_limits([m for m, _, _ in mels], db_range=db_range)
    fig = Figure(figsize=(9.0, 0.6 + 1.5 * len(mels)), dpi=100, layout="constrained")
    axes = fig.subplots(len(mels), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, (db, centres, rate)) in enumerate(zip(axes, mels)):
        seconds = db.shape[1] / rate
        image = ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=(0.0, seconds, -0.5, db.shape[0] - 0.5), interpolation="nearest")
        ticks = [b for b in (0, 20, 40, 60, 79) if b < db.shape[0]]
        ax.set_yticks(ticks, [f"{centres[b] / 1000:.1f}k" if centres[b] >= 1000 else f"{centres[b]:.0f}"
                              for b in ticks])
        ax.set_ylabel("Hz (mel)", fontsize=8)
        ax.tick_params(labelsize=7)
        if labels is not None:
            ax.set_title(labels[i], fontsize=8, loc="left")
    axes[-1].set_xlabel("time (s)", fontsize=8)
    bar = fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.01)
    bar.set_label("dB re 1 (one scale for all rows)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.savefig(path, format="png")
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


def log_html_folder(tracker: Tracker, folder: str | Path, *, page: str, artifact_path: str,
                    files: list[Path] | None = None) -> None:
    """Log every file of ``folder`` under ``artifact_path``; the HTML ``page`` (whose media are linked by
    relative names) goes up with a ``<base>`` naming where the server serves that artifact folder, because
    the MLflow UI previews an HTML artifact in an ``srcdoc`` frame, where relative links would resolve
    against the UI's own URL. The local copy is left as it is (its relative links work from the folder).
    ``files``: log only these (e.g. the job's own outputs), not everything else that lies in ``folder``."""
    folder = Path(folder)
    for f in sorted(Path(p) for p in files) if files is not None else sorted(folder.iterdir()):
        if f.is_file() and f.name != page:
            tracker.log_artifact(f, artifact_path=artifact_path)
    base = getattr(tracker, "artifact_base", lambda _: None)(f"{artifact_path}/")
    html = (folder / page).read_text(encoding="utf-8")
    if base is not None:
        html = html.replace("<head>", f'<head>\n<base href="{escape(base, quote=True)}">', 1)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / page
        copy.write_text(html, encoding="utf-8")
        tracker.log_artifact(copy, artifact_path=artifact_path)


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
