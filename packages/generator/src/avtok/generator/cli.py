"""``avtok-generator train | sample | info | train-ar | sample-ar``: train the twin DiT or the AR generator
over AVTok tokens on clips, sample playable mp4s with sound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer

from avtok.generator import recipes
from avtok.generator.ovi.config import build_config, count_parameters_formula
from avtok.generator.ovi.flow import FlowMatchingConfig
from avtok.generator.ovi.latents import (
    PooledAVLatents,
    PooledLatentConfig,
    TokenizerLatentConfig,
    TokenizerLatents,
)
from avtok.generator.ovi.pipeline import OviPipeline
from avtok.generator.ovi.recipe import freeze, latent_dataset, short_run_config, trainable_count
from avtok.generator.ovi.sampling import SamplerConfig
from avtok.generator.ovi.text import EmbeddingCache, minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.media_io import AVClip, probe, sample_path, write_clip
from avtok.tokenizer.visual.model import VisualTokenizer

app = typer.Typer(
    help="Audio-video generators: Ovi-style twin DiT, AR over AVTok tokens.", no_args_is_help=True
)


def _source(name: str) -> Path:
    path = Path(name)
    return path if path.is_file() else sample_path(name)


def _codec(tokenizer: str | None, seconds: float) -> PooledAVLatents | TokenizerLatents:
    if tokenizer is None:
        return PooledAVLatents(PooledLatentConfig(seconds=seconds))
    from avtok.tokenizer.loading import load_model

    model = load_model(tokenizer)
    if not isinstance(model, VisualTokenizer):
        raise typer.BadParameter(
            f"--tokenizer {tokenizer}: a {type(model).__name__}; give a visual tokenizer trained with "
            "--mel-images (avtok-tokenizer train --preset tiny-visual --mel-images)"
        )
    return TokenizerLatents(model, TokenizerLatentConfig(seconds=seconds))


def _windows(codec: PooledAVLatents | TokenizerLatents, sources: list[str], per_source: int) -> list[AVClip]:
    clips = []
    for name in sources:
        path = _source(name)
        duration = probe(path).duration
        usable = max(duration - codec.cfg.seconds, 0.0)
        starts = [usable * (i + 0.5) / per_source for i in range(per_source)]
        clips += [codec.read(str(path), start=s) for s in starts]
    return clips


def _write_samples(clips: list, output: Path) -> None:
    """One clip -> ``output``; several -> ``<stem>_1<suffix>``, ``<stem>_2<suffix>``, …"""
    for i, clip in enumerate(clips):
        path = output if len(clips) == 1 else output.with_name(f"{output.stem}_{i + 1}{output.suffix}")
        write_clip(path, clip)
        typer.echo(
            f"wrote {path} ({clip.video.shape[0]} frames, "
            f"{clip.audio.shape[-1] / clip.sample_rate:.2f} s audio)"
        )


def _train_config(*, lr: float, steps: int, output: Path, seed: int):
    """The CLI's runtime settings for both generators: ``short_run_config`` with ~20 log lines."""
    return short_run_config(lr=lr, steps=steps, checkpoint_dir=output / "checkpoints",
                            warmup_steps=min(50, steps // 10), log_every=max(1, steps // 20), seed=seed)


@app.command()
def info(
    preset: str = "tiny",
    ar: Annotated[bool, typer.Option("--ar", help="An AR-generator preset (tiny, paper).")] = False,
) -> None:
    """Print a preset's config and parameter counts (closed form)."""
    if ar:
        from avtok.generator.ar.config import build_ar_config, count_ar_parameters_formula

        cfg = build_ar_config(preset)
        counts = count_ar_parameters_formula(cfg)
    else:
        cfg = build_config(preset)
        counts = count_parameters_formula(cfg)
    typer.echo(json.dumps(cfg.to_dict(), indent=2))
    for part, n in counts.items():
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
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Visual tokenizer trained with --mel-images (its run or final/ dir; a preset name "
                     "gives random weights): latents come from it. Without it: PooledAVLatents."),
    ] = None,
    mlflow: bool = False,
    seed: int = 0,
) -> None:
    """Train on windows of real clips through the shared avtok Trainer; save a pipeline directory."""
    from avtok.eval.tracking import NullTracker, tracked_run, tracker_for_folder

    tracker = tracker_for_folder(output, experiment="avtok-generator", run_name=f"train-{preset}") if mlflow \
        else NullTracker()
    with tracked_run(tracker):  # FAILED / KILLED in MLflow when training fails or is interrupted
        _train(output=output, sources=sources, prompt=prompt, windows=windows, preset=preset, steps=steps,
               lr=lr, batch_size=batch_size, freeze_mode=freeze_mode, independent_t=independent_t,
               task_probs=task_probs, audio_rope_scale=audio_rope_scale, seconds=seconds, tokenizer=tokenizer,
               seed=seed, tracker=tracker)


def _train(*, output: Path, sources, prompt: str, windows: int, preset: str, steps: int, lr: float,
           batch_size: int, freeze_mode: str, independent_t: bool, task_probs: str, audio_rope_scale: float,
           seconds: float, tokenizer: str | None, seed: int, tracker) -> None:
    codec = _codec(tokenizer, seconds)
    clips = _windows(codec, sources or ["concert"], windows)
    if isinstance(codec, TokenizerLatents):
        codec.fit(clips)  # per-channel latent statistics of the training windows
    encoder = minilm_encoder()
    text = EmbeddingCache(output / "text_cache", encoder).get([prompt] * len(clips))
    data = latent_dataset(clips, codec, text)
    overrides = {"audio_rope_scale": audio_rope_scale} if audio_rope_scale > 0 else {}
    torch.manual_seed(seed)
    channels = {"video_channels": codec.spec.video_channels, "audio_channels": codec.spec.audio_channels}
    model = freeze(TwinDiT(build_config(preset, text_dim=encoder.dim, **channels, **overrides)), freeze_mode)
    null = EmbeddingCache(output / "text_cache", encoder).get([""])
    null.embeddings = torch.nn.functional.pad(
        null.embeddings, (0, 0, 0, text.embeddings.shape[1] - null.mask.shape[1])
    )
    null.mask = torch.nn.functional.pad(null.mask, (0, text.mask.shape[1] - null.mask.shape[1]))
    fm = FlowMatchingConfig(independent_t=independent_t, task_probs=[float(x) for x in task_probs.split(",")])
    cfg = _train_config(lr=lr, steps=steps, output=output, seed=seed)
    scale = model.audio_rope_scale(data[0]["video"][None], data[0]["audio"][None], codec.spec)
    typer.echo(f"{len(data)} windows, {trainable_count(model):,} trainable params, RoPE scale {scale:.4f}")
    summary = recipes.train_generator(
        model, data, cfg, fm=fm, spec=codec.spec, null_text=null, batch_size=batch_size, tracker=tracker,
        params={"flow": {"independent_t": independent_t, "task_probs": task_probs}},
    )
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
    _write_samples(out, output)


# --- autoregressive generator over AVTok tokens (issue 9) -------------------------------------------


def _tokenizer(name: str):
    """An AV tokenizer: a ``save_pretrained`` / tokenizer run directory, or a preset (random weights)."""
    from avtok.tokenizer.av.model import AVTokenizer
    from avtok.tokenizer.loading import load_model

    torch.manual_seed(0)  # a preset's random weights are the same on every call
    net = load_model(name)
    if not isinstance(net, AVTokenizer):
        raise typer.BadParameter(
            f"--tokenizer {name}: a {type(net).__name__}; the AR generator needs an AV "
            "tokenizer (a tiny-av / paper-av preset or its save_pretrained dir)"
        )
    return net


@app.command("train-ar")
def train_ar(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the trained AR pipeline.")],
    tokenizer: Annotated[str, typer.Option(help="AV tokenizer dir, or preset (random weights).")] = "tiny-av",
    sources: Annotated[
        list[str], typer.Option("--clip", help="Media file or sample name (repeatable; class i = i-th).")
    ] = None,
    windows: Annotated[int, typer.Option(help="Windows per source clip.")] = 32,
    preset: str = "tiny",
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 16,
    task_probs: Annotated[str, typer.Option(help="joint,a2v,v2a training probabilities.")] = "1,1,1",
    cond_dropout: Annotated[float, typer.Option(help="Condition dropout (for CFG).")] = 0.1,
    mlflow: bool = False,
    seed: int = 0,
) -> None:
    """Encode windows with the AV tokenizer, train the AR generator through the shared Trainer, save it."""
    from avtok.eval.tracking import NullTracker, tracked_run, tracker_for_folder

    tracker = tracker_for_folder(output, experiment="avtok-generator-ar", run_name=f"train-ar-{preset}") \
        if mlflow else NullTracker()
    with tracked_run(tracker):  # FAILED / KILLED in MLflow when training fails or is interrupted
        _train_ar(output=output, tokenizer=tokenizer, sources=sources, windows=windows, preset=preset,
                  steps=steps, lr=lr, batch_size=batch_size, task_probs=task_probs, cond_dropout=cond_dropout,
                  seed=seed, tracker=tracker)


def _train_ar(*, output: Path, tokenizer: str, sources, windows: int, preset: str, steps: int, lr: float,
              batch_size: int, task_probs: str, cond_dropout: float, seed: int, tracker) -> None:
    from avtok.generator.ar.config import build_ar_config
    from avtok.generator.ar.model import ARTransformer
    from avtok.generator.ar.pipeline import ARPipeline, encode_windows, read_windows
    from avtok.generator.ar.train import ARTrainConfig, token_dataset

    tok = _tokenizer(tokenizer)
    sources = sources or ["concert"]
    indices, labels = [], []
    for label, name in enumerate(sources):
        idx = encode_windows(tok, read_windows(tok, name, count=windows))
        indices.append(idx)
        labels += [label] * len(idx)
    indices = torch.cat(indices)
    t = tok.config
    base = build_ar_config(preset)
    cfg = build_ar_config(
        preset,
        codebook_size=t.codebook_size,
        video_tokens=t.video_tokens,
        audio_tokens=t.audio_tokens,
        num_classes=max(base.num_classes, len(sources)),
    )
    torch.manual_seed(seed)
    model = ARTransformer(cfg)
    probs = tuple(float(x) for x in task_probs.split(","))
    train_cfg = _train_config(lr=lr, steps=steps, output=output, seed=seed)
    typer.echo(f"{len(indices)} windows → tokens {tuple(indices.shape)}, {model.num_params():,} params")
    summary = recipes.train_ar(
        model, token_dataset(indices, labels), train_cfg,
        ar=ARTrainConfig(task_probs=probs, cond_dropout=cond_dropout), batch_size=batch_size, tracker=tracker,
        params={"ar": cfg.to_dict(), "tokenizer": tokenizer, "task_probs": task_probs},
    )
    ARPipeline(model, tok).save(output)
    typer.echo(
        f"trained {summary.steps} steps; final loss "
        f"{summary.last_metrics.get('train/loss', float('nan')):.4f}; saved {output}"
    )


@app.command("sample-ar")
def sample_ar(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output .mp4 (_1, _2, … with --num > 1).")],
    model: Annotated[Path, typer.Option(help="Directory written by `train-ar`.")],
    task: Annotated[str, typer.Option(help="joint | a2v | v2a")] = "joint",
    label: Annotated[int, typer.Option("--class", help="Class id for --task joint.")] = 0,
    input_clip: Annotated[
        Path | None, typer.Option("--input", help="Conditioning clip for a2v / v2a.")
    ] = None,
    start: Annotated[float, typer.Option(help="Start (s) of the window read from --input.")] = 0.0,
    tokenizer: Annotated[
        str | None, typer.Option(help="AV tokenizer dir or preset (default: the one saved with --model).")
    ] = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    cfg_scale: Annotated[
        float, typer.Option("--cfg", help="Classifier-free guidance scale (1 = off).")
    ] = 1.0,
    seed: int = 0,
    num: int = 1,
) -> None:
    """Generate AVTok tokens autoregressively and decode them into playable mp4s with sound."""
    from avtok.generator.ar.pipeline import ARPipeline, read_windows
    from avtok.generator.ar.sampling import ARSamplerConfig

    pipe = ARPipeline.load(model, tokenizer=_tokenizer(tokenizer) if tokenizer else None)
    clips = None
    if task in ("a2v", "v2a"):
        if input_clip is None:
            raise typer.BadParameter(f"--task {task} needs --input clip.mp4")
        clips = read_windows(pipe.tokenizer, input_clip, starts=[start]) * num
    elif task != "joint":
        raise typer.BadParameter(f"--task {task}: use joint, a2v or v2a")
    cfg = ARSamplerConfig(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale)
    out = pipe.generate(
        task=task,
        labels=[label] * num if task == "joint" else None,
        clips=clips,
        seeds=[seed + i for i in range(num)],
        cfg=cfg,
    )
    _write_samples(out, output)
