"""The main job: train the tiny AV tokenizer and the tiny twin-DiT generator on a real sounding video,
score held-out reconstructions and generated clips with avtok-eval, log everything to MLflow and write
an HTML report.

Steps (each with a progress bar; training is bounded by wall-clock budgets):

1. **AV tokenizer** (avtok.tokenizer, AVTok-style): ``train_tokenizer`` with the VFAL schedule (video
   first, audio later, decoders last) on the bundled iscc-samples concert clip, the last 10 s held out.
2. **Reconstruction** of the held-out windows, scored by ``avtok.eval.evaluate_reconstruction`` (PSNR,
   SSIM, frame FID, SI-SDR, MR-STFT, mel L1, FAD, codebook usage) next to the trivial baselines and two
   media "codec ceilings" (h264+aac round trip; HiFi-GAN on the true mel).
3. **Twin-DiT generator** (avtok.generator, Ovi-style): flow matching on pooled AV latents of the training
   part with MiniLM text, through the shared Trainer; then t2av clips for the prompt and a2v clips from
   held-out audio, scored by ``avtok.eval.evaluate_generation`` (frame FID, FAD, AV onset alignment) next
   to the untrained network (floor) and the latent round trip (ceiling).
4. **MLflow** (embedded ``./mlflow.db``): config, training curves, every table cell, the report files.
5. **Report**: ``out/demo/report.html`` with tables, frame strips, spectrograms and players.

A second run reuses the trained checkpoints (``runs/demo/<preset>-<hash>/``) unless ``--fresh``.

    avtok demo                                     # defaults (./dev demo in a checkout): tiny models, 7 min of training, ~10 min in all
    avtok demo --data ~/videos --prompt "a dog barking in a park"
    avtok demo --preset paper --device cuda --minutes 120
    avtok demo --minutes 0.5 --max-steps 30 --samples 2 --eval-windows 4   # quick check
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import polars as pl
import torch
import typer
from rich.console import Console
from rich.table import Table

from avtok.eval.artifacts import log_html_folder
from avtok.eval.tracking import NullTracker, PrefixedTracker, Tracker, tracked_run, tracker_for_folder
from avtok.generator.job import generator_stage, tokenizer_stage
from avtok.generator.job.config import PRESETS, DemoConfig
from avtok.generator.job.outputs import OutputFolder
from avtok.generator.job.report import generator_sections, tokenizer_sections, write_report
from avtok.generator.ovi.latents import PooledAVLatents
from avtok.tokenizer.cli_style import friendly
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.window_data import check_data, log_stats
from avtok.train.atomic import atomic_write_json

# serves the runs and, by path, their artifacts (so the logged report's relative links work)
SERVE_MLFLOW = "mlflow server --backend-store-uri sqlite:///mlflow.db --artifacts-destination ./mlartifacts --workers 1"


@dataclass(kw_only=True)
class DemoResult:
    report: Path
    results: dict  # what results.json holds
    recon: pl.DataFrame
    generation: pl.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


# Step caps from the budget at a generous 1-thread CPU rate (tiny presets, measured on a busy 2-core box:
# tokenizer 12-28 steps/s, generator ~3 steps/s). The wall-clock budget stays the bound; the cap gives the
# cosine schedule and the progress bars a real end.
TOKENIZER_STEPS_PER_S = 20.0
GENERATOR_STEPS_PER_S = 4.0


def step_caps(cfg: DemoConfig) -> tuple[int, int]:
    if cfg.max_steps is not None:
        return cfg.max_steps, cfg.max_steps
    tok_s, gen_s = 60 * cfg.minutes * cfg.tokenizer_share, 60 * cfg.minutes * (1 - cfg.tokenizer_share)
    return max(10, round(tok_s * TOKENIZER_STEPS_PER_S)), max(10, round(gen_s * GENERATOR_STEPS_PER_S))


def tokenizer_run(cfg: DemoConfig, cache: Path) -> RunConfig:
    job = cfg.job
    steps = step_caps(cfg)[0]
    return RunConfig(
        family="av",
        preset=job.tokenizer,
        schedule="vfal",
        data=cfg.data,
        holdout_seconds=cfg.holdout_seconds,
        minutes=cfg.minutes * cfg.tokenizer_share,
        max_steps=steps,
        batch_size=job.tokenizer_batch,
        warmup_steps=min(50, max(1, steps // 10)),
        eval_every=500,
        eval_windows=cfg.eval_windows,
        # the paper's loss set on a GPU; on CPU the Inception perceptual/Gram and vocoder MR-STFT terms cost
        # 27-80x an L1 step, so the CPU budget trains with L1 terms only (as `avtok-tokenizer train` does)
        perceptual=not str(cfg.device).startswith("cpu"),
        mrstft=not str(cfg.device).startswith("cpu"),
        checkpoint_dir=cache / "tokenizer",
        device=cfg.device,
        seed=cfg.seed,
        artifacts=False,
        progress=True,
    )


def _metrics(df: pl.DataFrame, prefix: str) -> dict[str, float]:
    numeric = [c for c, t in df.schema.items() if t.is_numeric()]
    out = {}
    for row in df.iter_rows(named=True):
        name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in str(row["model"]))
        out.update({f"{prefix}/{name}/{c}": float(row[c]) for c in numeric if row[c] is not None})
    return out


@contextmanager
def _phase(timings: dict[str, float], key: str, console: Console):
    """A titled, timed step of the job (its time lands in results.json, the report and MLflow)."""
    console.rule(f"[bold]{key}")
    t0 = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t0
    console.print(f"{key}: {timings[key]:.1f} s")


def _tokenizer_phase(cfg: DemoConfig, cache: Path, tracker: Tracker, console: Console, timings: dict):
    """Train (or reuse) the AV tokenizer, reconstruct the held-out windows, score them."""
    run_cfg = tokenizer_run(cfg, cache)
    with _phase(timings, "tokenizer training", console):
        tok = tokenizer_stage.train_or_reuse(run_cfg, PrefixedTracker(tracker, "tokenizer"))
    tok.held_out, tok.held_clips = tokenizer_stage.prepare_held_out(run_cfg)
    with _phase(timings, "tokenizer evaluation", console), tempfile.TemporaryDirectory() as tmp:
        rec = tokenizer_stage.evaluate_tokenizer(
            tok, Path(tmp), frame_stride=cfg.frame_stride, reference_rows=cfg.reference_rows
        )
        stretch = None
        if cfg.player_windows:
            stretch = tokenizer_stage.held_out_stretch(run_cfg, tok.model, cfg.player_windows)
    return tok, rec, stretch


def _generator_phase(cfg: DemoConfig, cache: Path, tracker: Tracker, console: Console, timings: dict):
    """Train (or reuse) the twin DiT, sample t2av + a2v (+ floor / ceiling sets), score them."""
    data = generator_stage.load_windows(cfg.data, PooledAVLatents(cfg.job.latents), cfg.holdout_seconds)
    log_stats(data.stats, PrefixedTracker(tracker, "generator"), step=0, what="generator data")
    with _phase(timings, "generator training", console):
        gen = generator_stage.train_or_reuse(
            data, job=cfg.job, prompt=cfg.text, cache=cache / "generator",
            minutes=cfg.minutes * (1 - cfg.tokenizer_share), max_steps=step_caps(cfg)[1], device=cfg.device,
            seed=cfg.seed, tracker=PrefixedTracker(tracker, "generator"),
        )  # fmt: skip
    with _phase(timings, "generator sampling", console):
        refs, clips = generator_stage.generate(
            gen, data, prompt=cfg.text, samples=cfg.samples, steps=cfg.sample_steps, seed=cfg.seed,
            reference_rows=cfg.reference_rows,
        )  # fmt: skip
    with _phase(timings, "generator evaluation", console):
        fad, _ = tokenizer_stage.fad_available()
        table = generator_stage.score(refs, clips, frame_stride=cfg.frame_stride, fad=fad)
    return data, gen, refs, clips, table


def run(cfg: DemoConfig, tracker: Tracker, console: Console) -> DemoResult:
    t_start, timings = time.perf_counter(), {}
    out, cache = Path(cfg.out), cfg.cache_dir()
    outputs = OutputFolder.open(out)  # validated before anything runs; a foreign non-empty folder is refused
    check_data(cfg.data)
    if cfg.fresh and cache.exists():
        shutil.rmtree(cache)  # the job's own cache folder (named by the config hash)
    cache.mkdir(parents=True, exist_ok=True)
    tracker.log_params(cfg.params())
    console.print(f"data {cfg.data}, preset {cfg.preset}, training budget {cfg.minutes:g} min, cache {cache}")
    tok, rec, stretch = _tokenizer_phase(cfg, cache, tracker, console, timings)
    data, gen, refs, clips, table = _generator_phase(cfg, cache, tracker, console, timings)

    with _phase(timings, "report", console):
        outputs.clean()  # the previous run's report files (listed in its manifest), nothing else
        recon_outputs = {name: m.outputs for name, m in rec.models.items()}
        tok_sections = tokenizer_sections(out, tok.held_out, recon_outputs, stretch)
        gen_sections = generator_sections(out, refs, clips)
        rec.summary.write_csv(out / "reconstruction_summary.csv")
        rec.per_clip.write_csv(out / "reconstruction_per_window.csv")
        if rec.clip_summary is not None:
            rec.clip_summary.write_csv(out / "reconstruction_clip.csv")
        table.write_csv(out / "generation.csv")
    timings["total"] = time.perf_counter() - t_start
    results = _results(cfg, cache, tok, gen, data, refs, timings, tracker)
    notes = [rec.fad_note] * bool(rec.fad_note) + _notes(cfg)
    report = write_report(
        out, title="avtok — the main job", intro=_intro(cfg, tok, data), facts=_facts(cfg, results),
        recon=rec.summary, recon_clip=rec.clip_summary, recon_sections=tok_sections, generation=table,
        gen_sections=gen_sections, notes=notes,
    )  # fmt: skip
    atomic_write_json(out / "results.json", results)
    _log(tracker, tok, gen, rec, table, timings, out, outputs.commit())
    _print_tables(console, rec.summary, rec.clip_summary, table)
    return DemoResult(report=report, results=results, recon=rec.summary, generation=table, timings=timings)


def _results(cfg, cache, tok, gen, data, refs, timings, tracker) -> dict:
    return {
        "config": cfg.params(),
        "cache": str(cache),
        "mlflow_run_id": getattr(tracker, "run_id", None),
        "tokenizer": {
            "steps": tok.steps,
            "new_steps": tok.new_steps,
            "reused": tok.reused,
            "stages": tok.stages,
            "held_out_windows": len(tok.held_out),
            "params": sum(p.numel() for p in tok.model.parameters()),
        },
        "generator": {
            "steps": gen.steps,
            "new_steps": gen.steps - gen.start_step,
            "reused": gen.reused,
            "final_loss": gen.final_loss,
            "train_windows": len(data.train),
            "references": len(refs),
            "params": sum(p.numel() for p in gen.pipeline.model.parameters()),
        },
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def _intro(cfg: DemoConfig, tok, data) -> str:
    """Plain text: the report escapes it (a prompt or a file name is shown, never run as markup)."""
    c = tok.model.config
    return (
        f"Data “{cfg.data}”, the last {cfg.holdout_seconds:g} s of every clip held out. "
        f"AV tokenizer preset {cfg.job.tokenizer}: windows of {c.frames} frames "
        f"{c.height}×{c.width} at {c.fps:.3g} fps + an 80×{c.mel_frames} log-mel ({c.seconds:.2f} s) → "
        f"{c.num_tokens} tokens of one {c.codebook_size}-code FSQ codebook, VFAL schedule. Twin DiT preset "
        f"{cfg.job.generator} on pooled latents of {data.codec.cfg.seconds:g} s windows "
        f"({len(data.train)} training windows), prompt “{cfg.text}”."
    )


def _facts(cfg: DemoConfig, results: dict) -> dict[str, str]:
    t, g, s = results["tokenizer"], results["generator"], results["timings_s"]
    stages = ", ".join(f"{x['name']} {x['steps']}" for x in t["stages"])
    return {
        "tokenizer": f"{t['params']:,} parameters; steps per stage: {stages}; "
        + ("reused from the cache (no new steps)" if t["reused"] else f"{t['new_steps']} new steps"),
        "generator": f"{g['params']:,} parameters; {g['steps']} steps; "
        + (
            "reused from the cache (no new steps)"
            if g["reused"]
            else f"{g['new_steps']} new steps, final train loss {g['final_loss']:.4g}"
        ),
        "wall time": ", ".join(f"{k} {v:.0f} s" for k, v in s.items()),
        "device / threads": f"{cfg.device} / {torch.get_num_threads()} torch threads",
        "MLflow": f"run {run_id} ({SERVE_MLFLOW}; the report is its artifact folder report/)"
        if (run_id := results["mlflow_run_id"])
        else "not tracked (--no-track)",
    }


def _notes(cfg: DemoConfig) -> list[str]:
    return [
        "The twin DiT runs on PooledAVLatents (pooled frames + pooled log-mel, HiFi-GAN decode), the "
        "generator package's documented stand-in codec; it does not use the AV tokenizer's tokens yet.",
        f"Training is bounded by wall-clock budgets ({cfg.minutes * cfg.tokenizer_share:.2f} min tokenizer, "
        f"{cfg.minutes * (1 - cfg.tokenizer_share):.2f} min generator) and step caps derived from them, so "
        "step counts depend on the machine and its load.",
        "Frame FID / FAD use few frames and clips here: they rank the rows of one table, they are not "
        "comparable to published numbers.",
    ]


def _log(tracker: Tracker, tok, gen, rec, generation: pl.DataFrame, timings, out: Path,
         files: list[Path]) -> None:
    tracker.log_metrics(_metrics(rec.summary, "recon"))
    if rec.clip_summary is not None:
        tracker.log_metrics(_metrics(rec.clip_summary, "recon_clip"))
    tracker.log_metrics(_metrics(generation, "gen"))
    tracker.log_metrics({f"time/{k.replace(' ', '_')}_s": v for k, v in timings.items()})
    tracker.log_metrics(
        {
            "tokenizer/steps": tok.steps,
            "tokenizer/new_steps": tok.new_steps,
            "generator/steps": gen.steps,
            "generator/new_steps": gen.steps - gen.start_step,
        }
    )
    # this run's outputs only (the manifest), never other files in --out
    log_html_folder(tracker, out, page="report.html", artifact_path="report", files=files)


def _print_tables(
    console: Console, recon: pl.DataFrame, recon_clip: pl.DataFrame | None, generation: pl.DataFrame
) -> None:
    cols_rec = ("model", "psnr", "ssim", "frame_fid", "si_sdr", "mrstft", "mel_l1", "fad")
    tables = [("held-out reconstruction (mean over windows)", recon, cols_rec)]
    if recon_clip is not None:
        tables.append(("held-out reconstruction (the whole held-out tail as one clip)", recon_clip, cols_rec))
    tables.append(
        (
            "generation vs held-out clips",
            generation,
            ("model", "clips", "frame_fid", "fad", "av_onset_align", "av_loudness_motion"),
        )
    )
    for title, df, cols in tables:
        table = Table(title=title)
        cols = [c for c in cols if c in df.columns]
        for c in cols:
            table.add_column(c, justify="left" if c == "model" else "right", no_wrap=c == "model")
        for row in df.select(cols).iter_rows():
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        console.print(table)


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="avtok: the main job (train, evaluate, report) as one command.")


@app.callback()
def _group() -> None:
    """avtok: tokenize images, video and audio into one token space and generate sounding video."""


@app.command("demo")
@friendly
def demo(
    data: Annotated[
        str, typer.Option(help="sample:<name>, a video file, a folder of videos or a .txt list")
    ] = ("sample:concert"),
    preset: Annotated[
        str, typer.Option(help=f"model sizes: {' | '.join(PRESETS)} (paper: AVTok 208M + 81M DiT, GPU)")
    ] = "tiny",
    minutes: Annotated[float, typer.Option(help="training budget (55 % tokenizer, 45 % generator)")] = 7.0,
    max_steps: Annotated[
        int | None, typer.Option(help="training steps of each model (quick runs); default: from --minutes")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, …")] = "cpu",
    prompt: Annotated[
        str | None, typer.Option(help="text prompt for training and t2av (default: the concert's caption)")
    ] = None,
    samples: Annotated[int, typer.Option(min=2, help="generated clips per task")] = 4,
    sample_steps: Annotated[int, typer.Option(min=1, help="UniPC sampling steps")] = 25,
    eval_windows: Annotated[int, typer.Option(min=2, help="held-out tokenizer windows scored")] = 16,
    holdout_seconds: Annotated[
        float, typer.Option(min=0.0, help="hold out the last N s of every clip")
    ] = 10.0,
    frame_stride: Annotated[int, typer.Option(min=1, help="frame FID on every N-th frame")] = 2,
    reference_rows: Annotated[
        bool, typer.Option(help="also score the media ceilings and the generator's floor / ceiling sets")
    ] = True,
    out: Annotated[
        Path, typer.Option(help="report folder: new or empty, or one this job wrote (only the files its "
                                "last run "
                                "wrote are replaced; .avtok-outputs.json lists them)")
    ] = Path("out/demo"),
    cache: Annotated[Path, typer.Option(help="checkpoints, reused by later runs")] = Path("runs/demo"),
    fresh: Annotated[
        bool, typer.Option(help="retrain from scratch instead of reusing the checkpoints")
    ] = False,
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="torch CPU threads: 1 suits the tiny models and shared machines (2 threads on a busy "
            "2-core box ran ~20x slower); 0 = torch's default",
        ),
    ] = 1,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name")] = "avtok-demo",
    track: Annotated[bool, typer.Option(help="log to the embedded MLflow store (./mlflow.db)")] = True,
) -> None:
    """Train and evaluate the AV tokenizer and the twin-DiT generator (see the module docstring)."""
    if threads > 0:
        torch.set_num_threads(threads)
    cfg = DemoConfig(
        data=data,
        preset=preset,
        minutes=minutes,
        max_steps=max_steps,
        device=device,
        prompt=prompt,
        samples=samples,
        sample_steps=sample_steps,
        eval_windows=eval_windows,
        holdout_seconds=holdout_seconds,
        frame_stride=frame_stride,
        reference_rows=reference_rows,
        out=str(out),
        cache=str(cache),
        fresh=fresh,
        experiment=experiment,
        track=track,
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))  # logs and pipes: room for the metric tables
    # the cache folder remembers the job's MLflow run: a rerun after a kill continues it (marked KILLED
    # once), a rerun after a finished job is a new run
    tracker: Tracker = (
        tracker_for_folder(cfg.cache_dir(), experiment=cfg.experiment, run_name=f"main-job-{cfg.preset}",
                           resume=not cfg.fresh, only_interrupted=True, device=cfg.device)
        if track
        else NullTracker()
    )
    with tracked_run(tracker):  # FAILED / KILLED in MLflow when the job fails or is interrupted
        result = run(cfg, tracker, console)
    console.print(f"report: {result.report.resolve()}  (total {result.timings['total']:.0f} s)")
    if track:
        console.print(f"MLflow run {tracker.run_id}: {SERVE_MLFLOW}")
        if url := tracker.artifact_url("report/report.html"):
            console.print(f"the report, served by that server with working links: {url}")


def main() -> None:
    """Console-script entry point (``avtok``)."""
    app()


if __name__ == "__main__":
    main()
