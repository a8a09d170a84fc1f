"""``avtok-generator train | sample | info``: train a twin DiT on clips, sample playable mp4s with sound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer

from avtok.generator.config import build_config, count_parameters_formula
from avtok.generator.flow import FlowMatchingConfig
from avtok.generator.latents import PooledAVLatents, PooledLatentConfig
from avtok.generator.pipeline import OviPipeline
from avtok.generator.sampling import SamplerConfig
from avtok.generator.text import EmbeddingCache, minilm_encoder
from avtok.generator.train import flow_step, freeze, latent_dataset, trainable_count
from avtok.generator.twin_dit import TwinDiT
from avtok.media_io import AVClip, probe, sample_path, write_clip

app = typer.Typer(help="Ovi-style twin-DiT audio-video generator.", no_args_is_help=True)


def _source(name: str) -> Path:
    path = Path(name)
    return path if path.is_file() else sample_path(name)


def _windows(codec: PooledAVLatents, sources: list[str], per_source: int) -> list[AVClip]:
    clips = []
    for name in sources:
        path = _source(name)
        duration = probe(path).duration
        usable = max(duration - codec.cfg.seconds, 0.0)
        starts = [usable * (i + 0.5) / per_source for i in range(per_source)]
        clips += [codec.read(str(path), start=s) for s in starts]
    return clips


@app.command()
def info(preset: str = "tiny") -> None:
    """Print a preset's config and parameter counts (closed form)."""
    cfg = build_config(preset)
    typer.echo(json.dumps(cfg.to_dict(), indent=2))
    for part, n in count_parameters_formula(cfg).items():
        typer.echo(f"{part:>6}: {n:,}")


@app.command()
def train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the trained pipeline.")],
    sources: Annotated[
        list[str], typer.Option("--clip", help="Media file or sample name (repeatable).")
    ] = None,
    prompt: Annotated[str, typer.Option(help="Prompt of every training window.")] = "a live band on stage",
    windows: Annotated[int, typer.Option(help="Windows per source clip.")] = 4,
    preset: str = "tiny",
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 4,
    freeze_mode: Annotated[str, typer.Option("--freeze", help="none | attention | audio | video")] = "none",
    independent_t: bool = False,
    task_probs: Annotated[str, typer.Option(help="t2av,a2v,v2a training probabilities.")] = "1,0,0",
    audio_rope_scale: Annotated[float, typer.Option(help="Override the derived scale (0 = derive).")] = 0.0,
    seconds: float = 2.0,
    mlflow: bool = False,
    seed: int = 0,
) -> None:
    """Train on windows of real clips through the shared avtok Trainer; save a pipeline directory."""
    from avtok.eval.tracking import MlflowTracker, NullTracker
    from avtok.tokenizer.training import ResumableLoader, TrainConfig, Trainer

    codec = PooledAVLatents(PooledLatentConfig(seconds=seconds))
    clips = _windows(codec, sources or ["concert"], windows)
    encoder = minilm_encoder()
    text = EmbeddingCache(output / "text_cache", encoder).get([prompt] * len(clips))
    data = latent_dataset(clips, codec, text)
    overrides = {"audio_rope_scale": audio_rope_scale} if audio_rope_scale > 0 else {}
    torch.manual_seed(seed)
    model = freeze(TwinDiT(build_config(preset, text_dim=encoder.dim, **overrides)), freeze_mode)
    null = EmbeddingCache(output / "text_cache", encoder).get([""])
    null.embeddings = torch.nn.functional.pad(
        null.embeddings, (0, 0, 0, text.embeddings.shape[1] - null.mask.shape[1])
    )
    null.mask = torch.nn.functional.pad(null.mask, (0, text.mask.shape[1] - null.mask.shape[1]))
    fm = FlowMatchingConfig(independent_t=independent_t, task_probs=[float(x) for x in task_probs.split(",")])
    cfg = TrainConfig(
        lr=lr,
        min_lr=lr / 10,
        warmup_steps=min(50, steps // 10),
        max_steps=steps,
        ema_decay=None,
        weight_decay=0.0,
        checkpoint_dir=output / "checkpoints",
        checkpoint_every=steps,
        log_every=max(1, steps // 20),
        seed=seed,
    )
    tracker = MlflowTracker(experiment="avtok-generator") if mlflow else NullTracker()
    scale = model.audio_rope_scale(data[0]["video"][None], data[0]["audio"][None], codec.spec)
    typer.echo(f"{len(data)} windows, {trainable_count(model):,} trainable params, RoPE scale {scale:.4f}")
    summary = Trainer(
        model,
        flow_step(fm, spec=codec.spec, null_text=null),
        ResumableLoader(data, batch_size=min(batch_size, len(data)), seed=seed),
        cfg,
        tracker=tracker,
        params={
            "generator": model.cfg.to_dict(),
            "flow": {"independent_t": independent_t, "task_probs": task_probs},
        },
    ).fit()
    tracker.close()
    OviPipeline(model, codec, encoder).save(output)
    typer.echo(
        f"trained {summary.steps} steps; "
        f"final loss {summary.last_metrics.get('train/loss', float('nan')):.4f}; "
        f"saved {output}"
    )


@app.command()
def sample(
    prompt: Annotated[
        str, typer.Option(help="Combined prompt (speech in <S>…<E>, audio in <AUDCAP>…<ENDAUDCAP>).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output .mp4 (one per seed: _1, _2, … suffixes).")
    ],
    model: Annotated[Path, typer.Option(help="Pipeline directory written by `train`.")],
    task: Annotated[str, typer.Option(help="t2av | a2v | v2a")] = "t2av",
    input_clip: Annotated[
        Path | None, typer.Option("--input", help="Conditioning clip for a2v / v2a.")
    ] = None,
    start: Annotated[float, typer.Option(help="Start (s) of the window read from --input.")] = 0.0,
    steps: int = 50,
    solver: str = "unipc",
    shift: float = 5.0,
    cfg_video: float = 4.0,
    cfg_audio: float = 3.0,
    negative_video: str = "",
    negative_audio: str = "",
    seed: int = 0,
    num: int = 1,
) -> None:
    """Sample clip(s) and write playable mp4s with sound."""
    pipe = OviPipeline.load(model)
    clips = None
    if task in ("a2v", "v2a"):
        if input_clip is None:
            raise typer.BadParameter(f"--task {task} needs --input clip.mp4")
        clips = [pipe.codec.read(str(input_clip), start=start)] * num
    cfg = SamplerConfig(steps=steps, solver=solver, shift=shift, cfg_video=cfg_video, cfg_audio=cfg_audio)
    out = pipe.generate(
        [prompt] * num,
        task=task,
        clips=clips,
        seeds=[seed + i for i in range(num)],
        cfg=cfg,
        negative_video=negative_video,
        negative_audio=negative_audio,
    )
    for i, clip in enumerate(out):
        path = output if num == 1 else output.with_name(f"{output.stem}_{i + 1}{output.suffix}")
        write_clip(path, clip)
        typer.echo(
            f"wrote {path} ({clip.video.shape[0]} frames, "
            f"{clip.audio.shape[-1] / clip.sample_rate:.2f} s audio)"
        )
