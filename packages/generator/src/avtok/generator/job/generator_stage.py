"""The main job's generator phase: train (or reuse) the twin DiT on windows of the training part of the
data, sample t2av clips for the prompt and a2v clips from held-out audio, score them with avtok-eval.

The twin DiT runs on ``PooledAVLatents`` (pooled frames + pooled log-mel, decoded by HiFi-GAN), the
generator package's documented latent codec: avtok.generator has no LatentCodec over the AV tokenizer yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from avtok.eval.generation import GenerationConfig, evaluate_generation
from avtok.eval.tracking import Tracker
from avtok.generator.ovi.config import build_config
from avtok.generator.ovi.flow import FlowMatchingConfig
from avtok.generator.ovi.latents import PooledAVLatents
from avtok.generator.ovi.pipeline import PIPELINE_NAME, OviPipeline
from avtok.generator.ovi.recipe import latent_dataset
from avtok.generator.ovi.sampling import SamplerConfig
from avtok.generator.ovi.text import EmbeddingCache, minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.generator.recipes import train_generator
from avtok.generator.training_data import training_windows
from avtok.media_io import AVClip, DataStats
from avtok.tokenizer.recipes import evenly
from avtok.tokenizer.window_data import heldout_windows
from avtok.train import TrainConfig
from avtok.train.atomic import atomic_write_text

MAX_TRAIN_WINDOWS = 512


@dataclass(kw_only=True)
class GeneratorData:
    codec: PooledAVLatents
    train: list[AVClip]  # windows of the training part of every clip
    held_out: list[AVClip]  # windows of the held-out tails (references; their audio drives a2v)
    stats: DataStats | None = None  # skipped / failed / adjusted files of the training windows


def load_windows(data: str, codec: PooledAVLatents, holdout_seconds: float) -> GeneratorData:
    """Codec windows from the one data path (``training_windows``, as ``avtok-generator train`` reads them),
    split like the tokenizer's data (the last ``holdout_seconds`` of every file held out): up to
    ``MAX_TRAIN_WINDOWS`` shuffled training windows (their latents are encoded once) and every held-out
    window. Frames are centre-cropped (the tokenizer phase's framing), files without audio give silence."""
    cfg = codec.window_config(resize_mode="crop", allow_silent=True, holdout_seconds=holdout_seconds)
    train = training_windows([data], cfg, count=MAX_TRAIN_WINDOWS, seed=0)
    held = [s.clip() for s in heldout_windows(data, cfg, holdout_seconds=holdout_seconds)]
    return GeneratorData(codec=codec, train=train.clips, held_out=held, stats=train.stats)


@dataclass(kw_only=True)
class GeneratorResult:
    pipeline: OviPipeline
    untrained: OviPipeline  # the same architecture and seed, no training: the floor
    start_step: int
    steps: int
    reused: bool
    final_loss: float | None


def _build(job, encoder, seed: int) -> TwinDiT:
    torch.manual_seed(seed)
    return TwinDiT(build_config(job.generator, text_dim=encoder.dim, **job.generator_overrides))


def train_or_reuse(
    data: GeneratorData,
    *,
    job,
    prompt: str,
    cache: Path,
    minutes: float,
    max_steps: int,
    device: str,
    seed: int,
    tracker: Tracker,
) -> GeneratorResult:
    """Load the saved pipeline of an earlier run, or train through the shared Trainer and save one."""
    encoder = minilm_encoder(device=device)
    untrained = OviPipeline(_build(job, encoder, seed).to(device), data.codec, encoder)
    pipe_dir = cache / "pipeline"
    if (pipe_dir / PIPELINE_NAME).is_file():
        pipe = OviPipeline.load(pipe_dir, encoder=encoder)
        pipe.model.to(device)
        steps = int((pipe_dir / "steps.txt").read_text())
        return GeneratorResult(
            pipeline=pipe, untrained=untrained, start_step=steps, steps=steps, reused=True, final_loss=None
        )
    text = EmbeddingCache(cache / "text_cache", encoder).get([prompt] * len(data.train))
    items = latent_dataset(data.train, data.codec, text)
    model = _build(job, encoder, seed).to(device)
    fm = FlowMatchingConfig(task_probs=(0.5, 0.5, 0.0), text_dropout=0.0)  # t2av + a2v in one model
    steps = max_steps
    cfg = TrainConfig(
        lr=job.generator_lr,
        min_lr=job.generator_lr / 10,
        warmup_steps=min(20, steps // 4),
        max_steps=steps,
        max_minutes=minutes,
        ema_decay=None,
        weight_decay=0.0,
        seed=seed,
        checkpoint_dir=cache / "checkpoints",
        checkpoint_every=200,
        keep_last=1,
        log_every=max(1, min(25, steps // 5)),
        progress=True,
    )
    summary = train_generator(  # an interrupted run continues from its last checkpoint
        model, items, cfg, fm=fm, spec=data.codec.spec, batch_size=job.generator_batch, tracker=tracker,
        resume=True, device=device,
    )
    pipe = OviPipeline(model, data.codec, encoder)
    pipe.save(pipe_dir)
    atomic_write_text(pipe_dir / "steps.txt", str(summary.steps))
    return GeneratorResult(
        pipeline=pipe,
        untrained=untrained,
        start_step=summary.start_step,
        steps=summary.steps,
        reused=False,
        final_loss=summary.last_metrics.get("train/loss"),
    )


# ---------------------------------------------------------------- sampling and scoring


def generate(
    result: GeneratorResult,
    data: GeneratorData,
    *,
    prompt: str,
    samples: int,
    steps: int,
    seed: int,
    reference_rows: bool = True,
) -> tuple[list[AVClip], dict[str, list[AVClip]]]:
    """t2av clips for the prompt, a2v clips from the audio of held-out references (+ floor and ceiling)."""
    refs = evenly(data.held_out, samples)
    sampler = SamplerConfig(steps=steps, solver="unipc", shift=3.0, cfg_video=1.0, cfg_audio=1.0)
    seeds = [seed + 1000 + i for i in range(samples)]
    jobs = {
        "t2av": lambda: result.pipeline.generate([prompt] * samples, task="t2av", seeds=seeds, cfg=sampler),
        "a2v (held-out audio)": lambda: result.pipeline.generate(
            [prompt] * len(refs), task="a2v", seeds=seeds[: len(refs)], cfg=sampler, clips=refs
        ),
    }
    if reference_rows:
        jobs["floor:untrained t2av"] = lambda: result.untrained.generate(
            [prompt] * samples, task="t2av", seeds=seeds, cfg=sampler
        )
        jobs["ceiling:latent round trip"] = lambda: [data.codec.decode(*data.codec.encode(c)) for c in refs]
    clips = {}
    for name, fn in tqdm(jobs.items(), desc="sampling", unit="set"):
        with torch.no_grad():
            clips[name] = fn()
    return refs, clips


def score(
    refs: list[AVClip], clips: dict[str, list[AVClip]], *, frame_stride: int, fad: bool
) -> pl.DataFrame:
    """evaluate_generation of every set against the held-out references (+ the references' own sync)."""
    cfg = GenerationConfig(frame_fid=True, fad=fad, av_sync=True, frame_stride=frame_stride)
    rows, ref_row = [], None
    for name, gen in tqdm(clips.items(), desc="scoring generated sets", unit="set"):
        df = evaluate_generation(gen, refs, cfg=cfg)
        rows.append(df.filter(pl.col("set") == "generated").with_columns(pl.lit(name).alias("set")))
        ref_row = df.filter(pl.col("set") == "reference").with_columns(
            pl.lit("real held-out clips").alias("set")
        )
    return pl.concat([*rows, ref_row], how="diagonal_relaxed").rename({"set": "model"})
