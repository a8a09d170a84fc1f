"""CPU evidence: train the tiny twin DiT on real concert windows with and without the audio RoPE scaling,
sample t2av and a2v clips, and score them with avtok-eval (frame FID, FAD, onset-alignment sync score).

    # latents from a trained avtok visual tokenizer (video grid + mel-image columns; the real codec)
    avtok-tokenizer train --preset tiny-visual --schedule plain --mel-images --minutes 15 \
        --max-steps 100000 --checkpoint-dir runs/codec_tokenizer --no-report
    python tools/evidence_generator.py --tokenizer runs/codec_tokenizer --steps 400 --windows 16 --samples 8

    # parameter-free pooled latents (PooledAVLatents)
    python tools/evidence_generator.py --steps 400 --windows 16 --samples 8 -o runs/gen_evidence

Honest scope: a ~0.37M-parameter model, a few minutes of CPU training on windows of one 60 s clip; the
references are those same training windows (this measures fitting, not generalisation).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
import torch

from avtok.eval.generation import GenerationConfig, evaluate_generation
from avtok.generator.ovi.config import build_config
from avtok.generator.ovi.flow import FlowMatchingConfig
from avtok.generator.ovi.latents import (
    PooledAVLatents,
    PooledLatentConfig,
    TokenizerLatentConfig,
    TokenizerLatents,
)
from avtok.generator.ovi.pipeline import OviPipeline
from avtok.generator.ovi.recipe import latent_dataset, short_run_config
from avtok.generator.ovi.sampling import SamplerConfig
from avtok.generator.ovi.text import EmbeddingCache, minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.generator.recipes import train_generator
from avtok.media_io import sample_path, write_clip
from avtok.tokenizer.loading import load_model

PROMPT = "a live band on stage <AUDCAP>rock band, drums and guitars, crowd<ENDAUDCAP>"


def train(name, data, codec, encoder, text_cache, args, **overrides):
    torch.manual_seed(0)
    channels = {"video_channels": codec.spec.video_channels, "audio_channels": codec.spec.audio_channels}
    model = TwinDiT(build_config("tiny", text_dim=encoder.dim, **channels, **overrides))
    fm = FlowMatchingConfig(task_probs=(0.5, 0.5, 0.0), text_dropout=0.0)  # t2av + a2v in one model
    cfg = short_run_config(
        lr=3e-3,
        min_lr=3e-4,
        steps=args.steps,
        checkpoint_dir=args.output / name / "checkpoints",
        warmup_steps=20,
        log_every=50,
        progress=False,
    )
    start = time.perf_counter()
    summary = train_generator(model, data, cfg, fm=fm, spec=codec.spec, batch_size=4)
    print(
        f"{name}: {summary.steps} steps in {time.perf_counter() - start:.0f} s, "
        f"final train/loss {summary.last_metrics.get('train/loss', float('nan')):.4f}"
    )
    return OviPipeline(model, codec, encoder)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("-o", "--output", type=Path, default=Path("runs/gen_evidence"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokenizer", help="visual tokenizer trained with --mel-images (run or final/ dir)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.tokenizer:
        codec = TokenizerLatents(load_model(args.tokenizer), TokenizerLatentConfig(seconds=2.0))
    else:
        codec = PooledAVLatents(PooledLatentConfig(seconds=2.0))
    src = str(sample_path("concert"))
    clips = [codec.read(src, start=1.0 + 3.5 * i) for i in range(args.windows)]
    if args.tokenizer:
        codec.fit(clips)  # per-channel latent statistics of the training windows
    encoder = minilm_encoder()
    text = EmbeddingCache(args.output / "text_cache", encoder).get([PROMPT] * len(clips))
    data = latent_dataset(clips, codec, text)
    print(
        f"latents: video {tuple(data[0]['video'].shape)}, audio {tuple(data[0]['audio'].shape)}, "
        f"derived audio RoPE scale {codec.spec.audio_rope_scale:.4f}"
    )
    pipes = {
        "scaled": train("scaled", data, codec, encoder, text, args),
        "unscaled": train("unscaled", data, codec, encoder, text, args, audio_rope_scale=1.0),
    }
    sampler = SamplerConfig(steps=args.sample_steps, solver="unipc", shift=3.0, cfg_video=1.0, cfg_audio=1.0)
    refs = clips[: args.samples]
    gen_cfg = GenerationConfig(frame_fid=True, fad=True, av_sync=True)
    rows = []
    for name, pipe in pipes.items():
        for task in ("t2av", "a2v"):
            seeds = list(range(args.samples))
            out = pipe.generate(
                [PROMPT] * args.samples,
                task=task,
                seeds=seeds,
                cfg=sampler,
                clips=refs if task == "a2v" else None,
            )
            for i, clip in enumerate(out[:2]):
                write_clip(args.output / name / f"{task}_{i}.mp4", clip)
            df = evaluate_generation(out, refs, cfg=gen_cfg)
            rows.append(
                df.filter(pl.col("set") == "generated").with_columns(
                    pl.lit(name).alias("rope"), pl.lit(task).alias("task")
                )
            )
            ref_row = df.filter(pl.col("set") == "reference")
    # reference sync score of the real clips, and the pooled-latent codec's own ceiling (real latents decoded)
    recon = [codec.decode(*codec.encode(c)) for c in refs]
    codec_row = evaluate_generation(recon, refs, cfg=gen_cfg).filter(pl.col("set") == "generated")
    table = pl.concat(
        [
            *rows,
            codec_row.with_columns(pl.lit("codec round trip").alias("rope"), pl.lit("-").alias("task")),
            ref_row.with_columns(pl.lit("real clips").alias("rope"), pl.lit("-").alias("task")),
        ],
        how="diagonal",
    )
    with pl.Config(tbl_rows=20, tbl_cols=20):
        cols = ["rope", "task", "clips", "frame_fid", "fad", "av_onset_align", "av_loudness_motion"]
        print(table.select(cols))


if __name__ == "__main__":
    main()
