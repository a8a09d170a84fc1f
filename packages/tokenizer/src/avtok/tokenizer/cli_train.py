"""``avtok-tokenizer train`` and ``reconstruct`` (registered on :data:`avtok.tokenizer.cli.app`)."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import polars as pl
import torch
import typer
from safetensors.torch import save_file

from avtok.eval.baselines import MeanFrameSilenceBaseline, RepeatFirstFrameBaseline
from avtok.eval.cli_errors import UserError
from avtok.eval.clip_metrics import ClipMetricsConfig, clip_metrics
from avtok.eval.tracking import tracked_run, tracker_for_folder
from avtok.media_io import AVClip, probe, read_clip, write_clip
from avtok.tokenizer.av.clip import AVClipReconstructor, read_window
from avtok.tokenizer.av.model import AVTokenizer
from avtok.tokenizer.cli_style import CLI_HINTS, USER_ERRORS, friendly
from avtok.tokenizer.families import get_family
from avtok.tokenizer.loading import load_model, parse_preset
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.runner import claim_tokenizer_run, train_tokenizer
from avtok.tokenizer.visual.config import TilingConfig
from avtok.tokenizer.visual.reconstruct import VisualReconstructor, crop_clip
from avtok.tokenizer.window_data import check_data
from avtok.train.atomic import atomic_directory, atomic_write_json
from avtok.train.distributed import dist_info, init_distributed
from avtok.train.pretrained import save_pretrained

__all__ = ["CLI_HINTS", "USER_ERRORS", "device_loss_defaults", "friendly", "train_command",
           "reconstruct_command", "metrics_table"]

DEFAULT_SECONDS = 4.0  # reconstruct's default span (shorter clips: what they hold)
REPORT_COLUMNS = ("model", "psnr", "ssim", "frame_fid", "mel_l1", "mrstft", "si_sdr")
HELDOUT_KINDS = {
    "heldout": "held-out windows, each scored as a clip (the baselines see each window's own frames)",
    "heldout_clip": "the whole held-out tail as one clip (reconstructed window by window; the baselines "
    "see the whole tail)",
}


def train_command(
    preset: Annotated[
        str, typer.Option(help="tiny-av, small-av, paper-av, tiny-visual, tiny-atoken-visual, base-visual, "
                               "so400m-visual")
    ] = "tiny-av",
    data: Annotated[
        str, typer.Option(help="sample:<name> (bundled clip), a file, a folder or a .txt manifest")
    ] = "sample:concert",
    schedule: Annotated[str | None, typer.Option(help="vfal | vanilla (AV); atoken | plain (visual)")] = None,
    minutes: Annotated[float | None, typer.Option(help="Wall-clock budget, split over the stages")] = None,
    max_steps: Annotated[
        int, typer.Option(help="Optimizer steps over all stages (split by fraction)")
    ] = 2000,
    holdout_seconds: Annotated[float, typer.Option(help="Hold out the last N seconds of every clip")] = 10.0,
    checkpoint_dir: Annotated[Path, typer.Option(help="Stage checkpoints + final/ model")] = Path(
        "runs/tokenizer"
    ),
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --checkpoint-dir (same preset and options; a larger "
                                "--max-steps extends it and re-plans the cosine): skip finished stages, "
                                "continue the interrupted one")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Move a run already in --checkpoint-dir aside (<dir>.replaced-<time>, "
                                "nothing deleted) and train a new one")
    ] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, … (torchrun: cuda = each rank's)")] = "cpu",
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: no tracking)")] = None,
    batch_size: Annotated[int, typer.Option(help="Global batch, split over the ranks under torchrun")] = 8,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default: 3e-3 for tiny-av, 1e-3 otherwise)")
    ] = None,
    eval_every: int = 200,
    eval_windows: Annotated[int, typer.Option(help="Held-out windows scored")] = 16,
    data_readers: Annotated[
        int | None, typer.Option(help="Decoding streams over all ranks (default: one per rank; more = "
                                      "DataLoader workers). Batches depend on it, not on the world size")
    ] = None,
    data_cache_mb: Annotated[
        float, typer.Option(min=0, help="Decoded windows each data reader keeps in memory, so later epochs "
                                        "skip decoding (0: decode every epoch)")
    ] = 1024.0,
    gram: Annotated[bool, typer.Option(help="Gram loss on images / AV frames (ablation: --no-gram)")] = True,
    perceptual: Annotated[
        bool | None,
        typer.Option("--perceptual/--no-perceptual",
                     help="Inception perceptual + Gram terms on images / one frame per AV window "
                          "(default: on for cuda, off on CPU, where they cost 27x / 80x an L1 step for "
                          "small / tiny AV)"),
    ] = None,
    mrstft: Annotated[
        bool | None,
        typer.Option("--mrstft/--no-mrstft",
                     help="AV: multi-resolution STFT through the frozen HiFi-GAN (default: on for cuda, "
                          "off on CPU, where mel L1 alone is ~50x faster)"),
    ] = None,
    ar_prior_weight: Annotated[
        float, typer.Option(help="AV: AR-prior cross-entropy weight (0 = off; LARP's 0.06 cost tiny 1.1 dB)")
    ] = 0.01,
    align_teacher: Annotated[
        str | None,
        typer.Option(help="AV: local TorchScript teacher (video, wave) -> (video, audio) features for the "
                          "representation-alignment term (none ships offline; see tokenizer.av.recipe). A "
                          "TorchScript file is executable code: pass only a file you exported yourself or "
                          "trust"),
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="auto (DDP under torchrun) | ddp | fsdp2 (shard the transformer blocks)")
    ] = "auto",
    anneal_to_budget: Annotated[
        bool, typer.Option(help="With --minutes: end each stage's cosine where its budget runs out "
                                "(--no-anneal-to-budget: the cosine runs to --max-steps)")
    ] = True,
    mel_images: Annotated[
        bool, typer.Option(help="Visual: also learn log-mels as grey images (the generator's audio latents)")
    ] = False,
    report: Annotated[
        bool, typer.Option(help="Score the held-out windows with avtok.eval at the end")
    ] = True,
    frame_stride: Annotated[
        int | None, typer.Option(min=1, help="Report: frame FID on every N-th frame (default 1 on a GPU, "
                                             "4 on CPU, where Inception dominates the report's time)")
    ] = None,
    init: Annotated[
        str | None, typer.Option(help="Visual: start from this model folder (e.g. a converted AToken "
                                      "checkpoint; it defines the architecture, --preset is ignored)")
    ] = None,
    distill_weight: Annotated[
        float, typer.Option(help="With --init: weight of the semantic distillation to the initial model")
    ] = 1.0,
    max_nonfinite_steps: Annotated[
        int, typer.Option(min=1, help="Stop the run after this many non-finite (skipped) steps in a row")
    ] = 20,
    seed: int = 0,
) -> None:
    """Train a tokenizer with a curriculum on real clips; print held-out metrics next to the baselines."""

    family, name = parse_preset(preset) if init is None else ("visual", "init")
    sched = schedule or ("vfal" if family == "av" else "atoken")
    check_data(data)
    perceptual, mrstft = device_loss_defaults(device, perceptual=perceptual, mrstft=mrstft, family=family)
    cfg = RunConfig(
        family=family,
        preset=name,
        schedule=sched,
        data=data,
        holdout_seconds=holdout_seconds,
        minutes=minutes,
        max_steps=max_steps,
        checkpoint_dir=checkpoint_dir,
        device=device,
        batch_size=batch_size,
        lr=lr,
        eval_every=eval_every,
        eval_windows=eval_windows,
        data_readers=data_readers,
        data_cache_mb=data_cache_mb,
        gram=gram,
        perceptual=perceptual,
        mrstft=mrstft,
        ar_prior_weight=ar_prior_weight,
        align_teacher=align_teacher,
        strategy=strategy,
        anneal_to_budget=anneal_to_budget,
        mel_images=mel_images,
        init=init,
        distill_weight=distill_weight,
        max_nonfinite_steps=max_nonfinite_steps,
        seed=seed,
    )
    init_distributed()
    # claimed before MLflow starts: one live run per folder
    with claim_tokenizer_run(cfg, resume=resume, overwrite=overwrite):
        stride = frame_stride or (4 if device.startswith("cpu") else 1)
        _train_and_report(cfg, preset=preset, experiment=experiment, resume=resume,
                          report_stride=stride if report else None)


def _train_and_report(cfg: RunConfig, *, preset: str, experiment: str | None, resume: bool,
                      report_stride: int | None) -> None:
    """Train, save ``final/``, print the stages; with ``report_stride``, score the held-out data (frame FID
    on every ``report_stride``-th frame)."""
    checkpoint_dir = cfg.checkpoint_dir
    tracker = None
    if experiment:  # the checkpoint folder remembers its MLflow run: --resume continues the same run
        tracker = tracker_for_folder(checkpoint_dir, experiment=experiment, run_name=f"{preset}-{cfg.schedule}",
                                     resume=resume, device=cfg.device)
    # FAILED / KILLED in MLflow when training fails or is interrupted
    try:
        with tracked_run(tracker) if tracker is not None else nullcontext():
            model, results = train_tokenizer(cfg, tracker=tracker, resume=resume)
            if dist_info().rank != 0:  # under torchrun rank 0 alone saves, reports and prints
                return
            net = model.cpu().eval()
            final = atomic_directory(Path(checkpoint_dir) / "final", lambda tmp: save_pretrained(net, tmp))
            for r in results:
                typer.echo(
                    f"stage {r.name}: steps {r.start_step} -> {r.steps}{' (done earlier)' if r.skipped else ''} "
                    f"{json.dumps({k: round(v, 4) for k, v in r.eval_metrics.items()})}"
                )
            typer.echo(f"model: {final}")
            if report_stride is not None:
                for what, summary in _heldout(cfg, model, report_stride).items():
                    path = atomic_write_json(Path(checkpoint_dir) / f"{what}.json", summary.to_dicts())
                    n = report_stride
                    every = f"; frame FID on every {_ordinal(n)} frame" if n > 1 else ""
                    typer.echo(f"{what}: {HELDOUT_KINDS[what]}{every}")
                    _print_table(summary)
                    if tracker is not None:
                        row = summary.row(0, named=True)
                        tracker.log_metrics(
                            {
                                f"{what}/{k}": float(row[k])
                                for k in REPORT_COLUMNS[1:]
                                if k in row and row[k] is not None
                            }
                        )
                        tracker.log_artifact(path)
    finally:
        if dist_info().enabled:  # leave the process group together (torchrun runs)
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def device_loss_defaults(device: str, *, perceptual: bool | None, mrstft: bool | None,
                         family: str = "av") -> tuple[bool, bool]:
    """The paper's loss set on a GPU; on CPU the expensive terms (Inception perceptual / Gram, HiFi-GAN
    MR-STFT) stay off unless asked for, so a short CPU run takes hundreds of steps instead of tens. Says so
    once, with the flags that turn them on."""
    gpu = not str(device).startswith("cpu")
    chosen = (gpu if perceptual is None else perceptual, gpu if mrstft is None else mrstft)
    defaulted = [flag for flag, given in (("--perceptual", perceptual), ("--mrstft", mrstft))
                 if given is None and (flag == "--perceptual" or family == "av")]
    if not gpu and defaulted:
        typer.echo(f"note: on CPU the Inception perceptual/Gram and HiFi-GAN MR-STFT loss terms are off "
                   f"(27-80x the cost of an L1 step); pass {' '.join(defaulted)} to turn them on", err=True)
    return chosen


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _heldout(cfg: RunConfig, model, frame_stride: int) -> dict[str, pl.DataFrame]:
    """``heldout``: the held-out windows, each scored as a clip; ``heldout_clip`` (AV): each file's whole
    held-out tail as one clip, reconstructed window by window."""
    family = get_family(cfg.family)
    ctx = family.prepare(cfg)
    out = {"heldout": family.heldout_report(model, ctx.held_out, frame_stride=frame_stride)}
    if cfg.family == "av" and ctx.held_clips:
        out["heldout_clip"] = family.heldout_report(model, ctx.held_clips, frame_stride=frame_stride)
    return out


def _print_table(df: pl.DataFrame) -> None:
    cols = [c for c in REPORT_COLUMNS if c in df.columns]
    with pl.Config(tbl_rows=20, tbl_cols=len(cols), tbl_width_chars=160, float_precision=4):
        typer.echo(str(df.select(cols)))


def metrics_table(out: AVClip, ref: AVClip, *, name: str, audio: bool = True) -> pl.DataFrame:
    """avtok.eval clip metrics of ``out`` and of the trivial baselines on ``ref``, one row each."""
    mcfg = ClipMetricsConfig(audio=audio)
    rows = [{"model": name, **clip_metrics(out, ref, mcfg)}]
    for b in (MeanFrameSilenceBaseline(), RepeatFirstFrameBaseline()):
        rows.append({"model": b.name, **clip_metrics(b.reconstruct(ref), ref, mcfg)})
    return pl.DataFrame(rows)


def reconstruct_command(
    source: Path,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output mp4")] = Path("reconstruction.mp4"),
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", "--model", help="Run dir / save_pretrained dir, or a preset")
    ] = "tiny",
    start: Annotated[float, typer.Option(help="Start (s)")] = 0.0,
    duration: Annotated[
        float | None,
        typer.Option(help="Seconds to reconstruct (whole model windows); default: 4 s, or what the clip "
                          "holds after --start when it is shorter"),
    ] = None,
    size: Annotated[int, typer.Option(help="Visual tokenizer: frame side (0: the source's own size)")] = 64,
    discrete: Annotated[
        bool, typer.Option(help="Visual FSQ model: decode from the token indices alone")
    ] = False,
    indices: Annotated[
        Path | None, typer.Option(help="Visual FSQ model: also write the indices (.safetensors)")
    ] = None,
    cache_tiles: Annotated[
        int | None,
        typer.Option(help="Visual: 16-frame tiles that attend to the previous N tiles' cached keys/values "
                          "(0: independent chunks, a converted AToken model's default; omit: the model's "
                          "own setting)"),
    ] = None,
    device: str = "cpu",
) -> None:
    """Reconstruct SOURCE (consecutive windows), write a sounding mp4, print metrics vs baselines."""

    net = load_model(checkpoint, device=device)
    if cache_tiles is not None and cache_tiles < 0:
        raise UserError(f"--cache-tiles {cache_tiles}: must be >= 0 (0: independent 16-frame chunks)")
    if duration is None:
        duration = min(DEFAULT_SECONDS, probe(source).duration - start - 0.01)  # 10 ms: container rounding
    if isinstance(net, AVTokenizer):
        c = net.config
        n = max(1, math.floor(duration / c.seconds))
        ref = read_window(net, source, start=start, windows=n)
        if ref.num_frames < c.frames:
            raise UserError(f"{source}: shorter than one {c.seconds:.2f} s window after --start {start}; "
                            "pass an earlier --start or a longer clip")
        out = AVClipReconstructor(net).reconstruct(ref)  # window by window
        table = metrics_table(out, ref, name="avtok-av")
    else:
        ref = read_clip(source, start=start, duration=duration, size=(size, size) if size > 0 else None,
                        resize_mode="crop", allow_silent=True)
        ref = crop_clip(ref, net)  # converted AToken models centre-crop to multiples of 16
        tiling = "config" if cache_tiles is None else TilingConfig(
            tile_frames=net.config.tiling.tile_frames if net.config.tiling else 16, cache_tiles=cache_tiles)
        rec = VisualReconstructor(net, discrete=discrete, tiling=tiling)
        out = rec.reconstruct(ref)
        if indices is not None and rec.last_indices is not None:
            save_file({"indices": rec.last_indices.contiguous()}, str(indices),
                      metadata={"shape": ",".join(map(str, ref.video.shape))})
            typer.echo(f"{indices}: {tuple(rec.last_indices.shape)} FSQ indices")
        table = metrics_table(out, ref, name="atoken-visual", audio=False)
    typer.echo(f"{write_clip(output, out)}: {out.num_frames} frames, {out.audio.shape[1]} audio samples")
    with pl.Config(tbl_rows=10, tbl_cols=10, tbl_width_chars=160, float_precision=4):
        typer.echo(str(table))
