"""CPU evidence for the AR generator over AVTok tokens (issue 9): train a tiny AR model on the unified
tokens of real concert windows, sample A2V / V2A / joint clips, score them with avtok-eval (frame FID, FAD,
AV onset alignment), and optionally compare with the tiny twin DiT trained on the same windows.

    python tools/evidence_ar.py --tokenizer-steps 600 --steps 1500 --windows 160 --samples 16 \\
        --dit-steps 300 -o runs/ar_evidence

Tokens come from a tiny AV tokenizer: ``--tokenizer DIR`` (a save_pretrained / `avtok-tokenizer train`
dir), else one trained here with ``train_tokenizer(RunConfig(family="av", preset="tiny", schedule="vfal"))``
on the concert clip (last 10 s held out). Honest scope: ~0.28M-parameter AR model, minutes of CPU, one
60 s clip; the references are training windows (this measures fitting, not generalisation).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import polars as pl
import torch

from avtok.eval.generation import GenerationConfig, evaluate_generation
from avtok.generator import recipes
from avtok.generator.ar.config import build_ar_config
from avtok.generator.ar.model import ARTransformer
from avtok.generator.ar.pipeline import ARPipeline, decode_indices, encode_windows, read_windows
from avtok.generator.ar.sampling import ARSamplerConfig
from avtok.generator.ar.train import ARTrainConfig, ar_loss, token_dataset
from avtok.generator.ovi.recipe import short_run_config
from avtok.media_io import write_clip

TRAIN_SPAN = 49.0  # seconds of the 60 s clip the windows come from (the tokenizer holds out the last 10 s)


def tokenizer_for(args):
    from avtok.tokenizer.loading import load_model

    if args.tokenizer:
        return load_model(args.tokenizer)
    from avtok.tokenizer.recipes import RunConfig
    from avtok.tokenizer.runner import train_tokenizer

    start = time.perf_counter()
    cfg = RunConfig(
        family="av",
        preset="tiny",
        schedule="vfal",
        data="sample:concert",
        holdout_seconds=10,
        max_steps=args.tokenizer_steps,
        batch_size=8,
        lr=args.tokenizer_lr,
        eval_windows=2,
        eval_every=10**6,
        checkpoint_dir=args.output / "tokenizer",
        artifacts=False,
    )
    model, stages = train_tokenizer(cfg, overwrite=True)  # a re-run moves the previous one aside
    print(f"tokenizer: VFAL {[(s.name, s.steps) for s in stages]} in {time.perf_counter() - start:.0f} s")
    return model.eval()


def train_ar(tokens, args):
    cfg = build_ar_config("tiny")
    torch.manual_seed(0)
    model = ARTransformer(cfg)
    train_cfg = short_run_config(
        lr=args.lr,
        steps=args.steps,
        checkpoint_dir=args.output / "ar" / "checkpoints",
        warmup_steps=50,
        log_every=100,
        progress=False,
    )
    start = time.perf_counter()
    summary = recipes.train_ar(model, token_dataset(tokens), train_cfg, ar=ARTrainConfig(cond_dropout=0.1))
    m = summary.last_metrics
    print(
        f"AR: {model.num_params():,} params, {summary.steps} steps in {time.perf_counter() - start:.0f} s, "
        f"final train/loss {m.get('train/loss', float('nan')):.3f} "
        + ", ".join(f"{t} {m.get(f'train/loss/{t}', float('nan')):.3f}" for t in ("joint", "a2v", "v2a"))
    )
    return model


def unigram_losses(model, train_tokens, held_tokens) -> dict[str, float]:
    """Context-free baseline: held-out targets under the training windows' token marginal of the generated
    stream(s) (add-0.1 smoothing over the codebook) — what the AR loss must beat to use its context."""
    nv, k = model.config.video_tokens, model.config.codebook_size
    cols = {"joint": slice(None), "a2v": slice(0, nv), "v2a": slice(nv, None)}
    row = {"tokens": "held-out, unigram of train tokens"}
    for task, col in cols.items():
        counts = torch.bincount(train_tokens[:, col].flatten(), minlength=k).double() + 0.1
        logp = (counts / counts.sum()).log()
        row[f"{task} loss"] = round(-logp[held_tokens[:, col].flatten()].mean().item(), 3)
    return row


def held_out_losses(model, train_tokens, held_tokens) -> pl.DataFrame:
    """Teacher-forced per-task loss (nats/token, no condition dropout) on training vs held-out windows
    (the clip's last 10 s, which the tokenizer held out too), next to ln(codebook) = a uniform guess."""
    rows = [unigram_losses(model, train_tokens, held_tokens)]
    for name, toks in (("train windows", train_tokens), ("held-out windows (last 10 s)", held_tokens)):
        row = {"tokens": name}
        for task in ("joint", "a2v", "v2a"):
            n = len(toks)
            with torch.no_grad():
                loss = ar_loss(
                    model.eval(),
                    toks,
                    torch.zeros(n, dtype=torch.long),
                    [task] * n,
                    torch.zeros(n, dtype=torch.bool),
                )["loss"]
            row[f"{task} loss"] = round(loss.item(), 3)
        rows.append(row)
    print(f"uniform guess: ln({model.config.codebook_size}) = {math.log(model.config.codebook_size):.3f}")
    return pl.DataFrame(rows)


def ar_samples(pipe, refs, args):
    n = len(refs)
    seeds = list(range(n))
    out = {}
    for name, task, scale in (
        ("a2v", "a2v", args.cfg),
        ("v2a", "v2a", args.cfg),
        ("joint", "joint", args.cfg),
        ("joint, no CFG", "joint", 1.0),
    ):
        cfg = ARSamplerConfig(temperature=args.temperature, top_p=args.top_p, cfg_scale=scale)
        start = time.perf_counter()
        clips = pipe.generate(
            task=task,
            labels=[0] * n if task == "joint" else None,
            clips=None if task == "joint" else refs,
            seeds=seeds,
            cfg=cfg,
        )
        print(f"AR {name}: {n} clips in {time.perf_counter() - start:.1f} s")
        out[f"AR {name}"] = clips
    return out


def dit_samples(refs, starts, ref_idx, args):
    """The tiny twin DiT on the same windows (pooled latents at the tokenizer's window), t2av / a2v / v2a."""
    from avtok.generator.ovi.config import build_config
    from avtok.generator.ovi.flow import FlowMatchingConfig
    from avtok.generator.ovi.latents import PooledAVLatents, PooledLatentConfig
    from avtok.generator.ovi.pipeline import OviPipeline
    from avtok.generator.ovi.recipe import latent_dataset
    from avtok.generator.ovi.sampling import SamplerConfig
    from avtok.generator.ovi.text import EmbeddingCache, minilm_encoder
    from avtok.generator.ovi.twin_dit import TwinDiT
    from avtok.media_io import sample_path

    prompt = "a live band on stage <AUDCAP>rock band, drums and guitars, crowd<ENDAUDCAP>"
    c = refs[0]
    codec = PooledAVLatents(PooledLatentConfig(seconds=c.audio.shape[-1] / c.sample_rate, fps=c.fps, size=32))
    clips = [codec.read(str(sample_path("concert")), start=s) for s in starts]
    encoder = minilm_encoder()
    text = EmbeddingCache(args.output / "text_cache", encoder).get([prompt] * len(clips))
    torch.manual_seed(0)
    model = TwinDiT(build_config("tiny", text_dim=encoder.dim))
    fm = FlowMatchingConfig(task_probs=(1 / 3, 1 / 3, 1 / 3), text_dropout=0.0)
    cfg = short_run_config(
        lr=3e-3,
        min_lr=3e-4,
        steps=args.dit_steps,
        checkpoint_dir=args.output / "dit" / "checkpoints",
        warmup_steps=20,
        log_every=50,
        progress=False,
    )
    start = time.perf_counter()
    summary = recipes.train_generator(model, latent_dataset(clips, codec, text), cfg, fm=fm, spec=codec.spec)
    print(
        f"twin DiT: {summary.steps} steps in {time.perf_counter() - start:.0f} s, final train/loss "
        f"{summary.last_metrics.get('train/loss', float('nan')):.3f}"
    )
    pipe = OviPipeline(model, codec, encoder)
    sampler = SamplerConfig(steps=25, solver="unipc", shift=3.0, cfg_video=1.0, cfg_audio=1.0)
    given = [clips[i] for i in ref_idx]  # the DiT's own reading of the reference windows
    out = {
        f"twin DiT {t}": pipe.generate(
            [prompt] * len(given),
            task=t,
            seeds=list(range(len(given))),
            cfg=sampler,
            clips=None if t == "t2av" else given,
        )
        for t in ("a2v", "v2a", "t2av")
    }
    return out  # its codec round trip: a2v's FAD and v2a's frame FID (the given stream passes through)


def score(sets, refs, args):
    gen_cfg = GenerationConfig(frame_fid=True, fad=True, av_sync=True)
    rows = []
    (args.output / "samples").mkdir(parents=True, exist_ok=True)
    for name, clips in sets.items():
        df = evaluate_generation(clips, refs, cfg=gen_cfg)
        rows.append(df.filter(pl.col("set") == "generated").with_columns(pl.lit(name).alias("model / task")))
        for i, clip in enumerate(clips[:2]):
            slug = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
            write_clip(args.output / "samples" / f"{slug}_{i}.mp4", clip)
    real = df.filter(pl.col("set") == "reference").with_columns(pl.lit("real clips").alias("model / task"))
    return pl.concat([*rows, real], how="diagonal")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default=None, help="AV tokenizer dir (else a tiny one is trained here)")
    ap.add_argument("--tokenizer-steps", type=int, default=600)
    ap.add_argument("--tokenizer-lr", type=float, default=1e-3)
    ap.add_argument("--windows", type=int, default=160, help="training windows (hop ≈ 0.3 s)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--cfg", type=float, default=2.0)
    ap.add_argument("--dit-steps", type=int, default=0, help="also train + score the twin DiT (0: skip)")
    ap.add_argument("-o", "--output", type=Path, default=Path("runs/ar_evidence"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = tokenizer_for(args)
    span = TRAIN_SPAN - tok.config.seconds
    starts = [span * i / (args.windows - 1) for i in range(args.windows)]
    windows = read_windows(tok, "concert", starts=starts)
    tokens = encode_windows(tok, windows)
    print(
        f"tokens: {tuple(tokens.shape)}, {len(torch.unique(tokens))} distinct of {tok.config.codebook_size}, "
        f"{len(torch.unique(tokens, dim=0))} distinct windows"
    )
    pipe = ARPipeline(train_ar(tokens, args), tok)
    held = read_windows(tok, "concert", starts=[TRAIN_SPAN + 0.5 + 0.3 * i for i in range(32)])
    with pl.Config(fmt_str_lengths=60, tbl_width_chars=140):
        print(held_out_losses(pipe.model, tokens, encode_windows(tok, held)))
    ref_idx = list(range(0, len(windows), max(1, len(windows) // args.samples)))[: args.samples]
    refs = [windows[i] for i in ref_idx]
    sets = {"AVTok round trip (real tokens decoded)": decode_indices(tok, encode_windows(tok, refs))}
    sets |= ar_samples(pipe, refs, args)
    if args.dit_steps > 0:
        sets |= dit_samples(refs, starts, ref_idx, args)
    table = score(sets, refs, args)
    with pl.Config(tbl_rows=30, tbl_cols=10, fmt_str_lengths=60, tbl_width_chars=140):
        print(table.select(["model / task", "clips", "frame_fid", "fad", "av_onset_align"]))


if __name__ == "__main__":
    main()
