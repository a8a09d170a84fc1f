"""avtok-eval: score folders of reconstructions or generations against references; compare tracked runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from avtok.eval.cli_errors import cli_errors

app = typer.Typer(help="avtok evaluation: reconstruction and generation metrics, run comparison.",
                  no_args_is_help=True)
runs_app = typer.Typer(help="Inspect tracked runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

Fps = Annotated[float | None, typer.Option(help="Resample clips to this frame rate.")]
Size = Annotated[int | None, typer.Option(help="Resize frames to SIZE x SIZE (default: keep).")]
Rate = Annotated[int | None, typer.Option("--sample-rate", help="Resample audio to this rate.")]
Dur = Annotated[float | None, typer.Option(help="Read only the first DURATION seconds of each file.")]
Exp = Annotated[str | None, typer.Option(help="Log params, metrics and tables to this MLflow experiment.")]
Uri = Annotated[str | None, typer.Option(help="MLflow tracking URI (default: sqlite:///./mlflow.db).")]
Out = Annotated[Path, typer.Option(help="Folder for CSV tables and artifacts.")]
SEGMENT_MB = 256.0  # frames per scored segment: ~41 of 1080p, ~370 of 640x360


# media-io's messages name Python arguments; on this command line they are flags.
_HINTS = {
    "pass duration=None": "leave out --duration",
    "shorten duration or": "lower --duration or",
    "shorten duration": "lower --duration",
    "pass duration >=": "pass --duration >=",
    "pass fps=... explicitly": "pass --fps",
    "e.g. size=(128, 128)": "e.g. --size 128",
}
_friendly = cli_errors(hints=_HINTS)


def _show(title: str, df: pl.DataFrame) -> None:
    typer.echo(title)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=40):
        typer.echo(str(df))


def _read_kwargs(fps, size, sample_rate, duration) -> dict:
    return {"fps": fps, "size": size, "sample_rate": sample_rate, "duration": duration}


def _tracker(experiment: str | None, tracking_uri: str | None, run_name: str):
    from avtok.eval.tracking import MlflowTracker, NullTracker

    if experiment is None:
        return NullTracker()
    return MlflowTracker(experiment=experiment, tracking_uri=tracking_uri, run_name=run_name)


@app.command("recon")
@_friendly
def recon(
    references: Annotated[Path, typer.Argument(help="Folder of reference clips.")],
    reconstructions: Annotated[Path, typer.Argument(help="Folder of reconstructions, named like the references.")],
    fps: Fps = None, size: Size = None, sample_rate: Rate = None, duration: Dur = None,
    frame_fid: Annotated[bool, typer.Option(help="Also frame-level FID (Inception, slow on CPU).")] = False,
    fad: Annotated[bool, typer.Option(help="Also FAD (aiSFX embeddings).")] = False,
    baselines: Annotated[bool, typer.Option(help="Score identity / mean-frame / first-frame baselines.")] = True,
    media: Annotated[int, typer.Option(help="Write frame strips, spectrograms and mp4s of the first N clips.")] = 2,
    segment_mb: Annotated[float, typer.Option(
        help="Score each file in consecutive segments of at most this many MiB of frames (bounds memory "
             "for long or high-resolution files; each segment is one row, its baselines are per segment)."
    )] = SEGMENT_MB,
    experiment: Exp = None, tracking_uri: Uri = None, out: Out = Path("avtok-eval-out"),
) -> None:
    """Score reconstructions against references (per clip segment and aggregate, with baselines)."""
    from avtok.eval.artifacts import log_report, write_table
    from avtok.eval.folders import FolderReconstructor, iter_clips
    from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
    from avtok.eval.tracking import tracked_run

    if not segment_mb > 0:
        raise ValueError(f"--segment-mb {segment_mb}: must be > 0 (MiB of frames per segment, e.g. 256)")
    model = FolderReconstructor(reconstructions)
    read_kw = _read_kwargs(fps, size, sample_rate, duration)
    tracker = _tracker(experiment, tracking_uri, run_name=f"recon:{reconstructions.name}")
    with tracked_run(tracker):  # FAILED / KILLED in MLflow when scoring fails or is interrupted
        tracker.log_params({"references": str(references), "reconstructions": str(reconstructions),
                            "fps": fps, "size": size, "sample_rate": sample_rate, "duration": duration})
        clips = iter_clips(references, name="references", segment_mb=segment_mb, **read_kw)
        cfg = ReconstructionConfig(baselines=baselines, frame_fid=frame_fid, fad=fad)
        report = evaluate_reconstruction(model, clips, cfg=cfg)
        _show("per clip", report.per_clip)
        _show("summary", report.summary)
        out.mkdir(parents=True, exist_ok=True)
        write_table(report.per_clip, out / "per_clip.csv")
        write_table(report.summary, out / "summary.csv")
        log_report(tracker, report.summary, out, per_clip=report.per_clip)
        refs = _first_segments(references, segment_mb, read_kw)
        for path in _media_artifacts(refs, model, out / "media", media):
            tracker.log_artifact(path, artifact_path="media")
    typer.echo(f"tables written to {out}")


def _first_segments(folder: Path, segment_mb: float, read_kw: dict):
    """The first segment of each file: the media previews never hold a whole long file."""
    from avtok.eval.folders import iter_segments, list_media

    for path in list_media(folder, name="references"):
        yield next(iter_segments(path, segment_mb=segment_mb, allow_silent=True, **read_kw))


def _media_artifacts(refs, model, folder: Path, count: int) -> list[Path]:
    """Side-by-side frame strip, stacked spectrograms and a short mp4 for the first ``count`` clips."""
    from avtok.eval.artifacts import frame_strip_png, short_mp4, spectrogram_png

    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, ref in enumerate(refs):
        if i >= count:
            break
        rec = model.reconstruct(ref)
        stem = Path(ref.source or f"clip{i}").stem
        paths.append(frame_strip_png(ref, rec, folder / f"{stem}_frames.png"))
        paths.append(spectrogram_png(folder / f"{stem}_mel.png", (ref.audio, ref.sample_rate),
                                     (rec.audio, rec.sample_rate)))
        paths.append(short_mp4(rec, folder / f"{stem}_recon.mp4"))
    return paths


@app.command("gen")
@_friendly
def gen(
    generated: Annotated[Path, typer.Argument(help="Folder of generated clips.")],
    references: Annotated[Path, typer.Argument(help="Folder of reference clips.")],
    fps: Fps = None, size: Size = None, sample_rate: Rate = None, duration: Dur = None,
    i3d: Annotated[Path | None, typer.Option(
        help="TorchScript I3D file (e.g. StyleGAN-V's i3d_torchscript.pt): enables FVD. A TorchScript file "
             "is executable code, run when FVD is computed: pass only files you trust.")] = None,
    frame_fid: Annotated[bool, typer.Option(help="Frame-level FID (Inception).")] = True,
    fad: Annotated[bool, typer.Option(help="FAD (aiSFX embeddings).")] = True,
    av_sync: Annotated[bool, typer.Option(help="Onset-alignment AV sync score.")] = True,
    experiment: Exp = None, tracking_uri: Uri = None, out: Out = Path("avtok-eval-out"),
) -> None:
    """Score a folder of generated clips against a folder of references."""
    from avtok.eval.artifacts import log_report, write_table
    from avtok.eval.folders import iter_clips
    from avtok.eval.generation import GenerationConfig, evaluate_generation
    from avtok.eval.tracking import tracked_run

    kw = _read_kwargs(fps, size, sample_rate, duration)
    cfg = GenerationConfig(frame_fid=frame_fid, fad=fad, av_sync=av_sync,
                           i3d_path=str(i3d) if i3d is not None else None)
    tracker = _tracker(experiment, tracking_uri, run_name=f"gen:{generated.name}")
    with tracked_run(tracker):  # FAILED / KILLED in MLflow when scoring fails or is interrupted
        tracker.log_params({"generated": str(generated), "references": str(references), **kw})
        table = evaluate_generation(iter_clips(generated, name="generated", **kw),
                                    iter_clips(references, name="references", **kw), cfg=cfg)
        _show("generation", table)
        out.mkdir(parents=True, exist_ok=True)
        write_table(table, out / "generation.csv")
        log_report(tracker, table, out, key="set")


@runs_app.command("compare")
@_friendly
def compare(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment name.")],
    tracking_uri: Uri = None,
    csv: Annotated[Path | None, typer.Option(help="CSV path (default: runs-<EXPERIMENT>.csv).")] = None,
) -> None:
    """Print a table of the experiment's runs (params and metrics) and write it as CSV."""
    from avtok.eval.tracking import compare_runs

    table = compare_runs(experiment, tracking_uri=tracking_uri)
    if table.width > 8 and table.height > 0:  # many metrics: one row per field, one column per run
        names = [f"{n} ({i[:8]})" for n, i in zip(table["run_name"], table["run_id"])]
        as_text = table.select(pl.all().cast(pl.String))
        _show(f"runs of {experiment}", as_text.transpose(include_header=True, header_name="field",
                                                          column_names=names))
    else:
        _show(f"runs of {experiment}", table)
    path = csv or Path(f"runs-{experiment}.csv")
    table.write_csv(path)
    typer.echo(f"written {path}")


if __name__ == "__main__":  # pragma: no cover
    app()
