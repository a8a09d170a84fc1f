"""Probe: how fast the AV tokenizer's video tokens start to carry information (the ``token_init`` choice).

Trains the video stream alone (L1, AdamW lr 1e-3 β 0.9/0.95 wd 0.1, batch 8, grad clip 1) on the concert
clip's training windows (last 10 s held out, as in ``evidence_tokenizer.py``) and prints, every quarter
of the run, the held-out and training PSNR of the pooled MSE, the spread of the continuous latents across
windows and the distinct codes used; then the same numbers for a per-patch PCA codec keeping ``code_dim``
numbers per patch (fitted on the training windows) for scale, and the rate a linear codec needs to beat
avtok.eval's mean-frame baseline: per-patch PCA at 1..32 numbers per patch next to that baseline (each
held-out window replaced by its own mean frame, here not rounded to 8 bits).
``--steps 0`` prints only these references.

``--prior-weight W`` keeps the preset's AR prior and adds ``W`` × its next-token cross-entropy to the
loss (what ``RunConfig.ar_prior_weight`` does in training; the CE reaches the encoder through FSQ's
straight-through codes) and prints the prior's cross-entropy on the held-out windows (nats per token);
``--prior-detach`` trains the prior on detached codes (the encoder feels nothing: the reference for how
predictable the tokens are without the prior's pressure). ``--cosine`` decays the learning rate along
a cosine after 200 warmup steps, as the training runs do.

    python tools/probe_av_video.py --preset tiny --token-init learned --steps 2000   # ≈ 1 min, 1 thread
    python tools/probe_av_video.py --preset tiny --token-init pooled --steps 2000
    python tools/probe_av_video.py --preset small --token-init pooled --steps 2000  # ≈ 4 min
    python tools/probe_av_video.py --preset small --steps 0   # the references alone (seconds)
    python tools/probe_av_video.py --preset small --video-tokens 512 --steps 4000  # rate sweep, ≈ 30 min
    python tools/probe_av_video.py --steps 10000 --cosine --prior-weight 0.06  # ≈ 6 min; 0.01, 0, ...
    python tools/probe_av_video.py --steps 10000 --cosine --prior-weight 0.01 --prior-detach
    python tools/probe_av_video.py --steps 4000 --fsq-levels 8,8,8,6,5  # the paper's codebook on tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import torch
from evidence_tokenizer import PatchPCA  # tools/ is on sys.path when this script runs

from avtok.eval.image_metrics import psnr_from_mse
from avtok.tokenizer.av import recipe as recipes_av
from avtok.tokenizer.av.config import resolve_av_config
from avtok.tokenizer.av.model import AVTokenizer, AVTokenizerOutput
from avtok.tokenizer.losses import ar_prior_loss
from avtok.tokenizer.recipes import RunConfig


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR of the pooled MSE for signals in [-1, 1] (``x`` clamped to that range first)."""
    return psnr_from_mse(float((x.clamp(-1, 1) - y).square().mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--token-init", choices=("learned", "pooled"), default="pooled")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--video-tokens", type=int, default=None,
                    help="override the preset's video tokens (the rate sweep: 256, 512 with small)")
    ap.add_argument("--fsq-levels", default=None,
                    help="override the preset's FSQ levels, comma list (the paper's: 8,8,8,6,5)")
    ap.add_argument("--prior-weight", type=float, default=0.0,
                    help="keep the AR prior; its CE x this weight joins the loss (0: no prior)")
    ap.add_argument("--prior-detach", action="store_true",
                    help="train the prior on detached codes (no pressure on the encoder)")
    ap.add_argument("--cosine", action="store_true", help="200 warmup steps, then a cosine to 0")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = RunConfig(preset=args.preset, perceptual=False, mrstft=False, artifacts=False,
                    checkpoint_dir=Path("/tmp/probe_av_video"))
    ctx = recipes_av.prepare(run)
    train, held = ctx.train_video, ctx.held_video
    preset = resolve_av_config(args.preset)
    cfg = dataclasses.replace(preset, prior=preset.prior if args.prior_weight > 0 else None, align_dim=None,
                              token_init=args.token_init)
    if args.video_tokens:
        cfg = dataclasses.replace(cfg, video_tokens=args.video_tokens)
    if args.fsq_levels:
        cfg = dataclasses.replace(cfg, fsq_levels=tuple(int(v) for v in args.fsq_levels.split(",")))
    model = AVTokenizer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)

    def lr_factor(s: int) -> float:
        if not args.cosine:
            return 1.0
        progress = min(s, args.steps) / max(1, args.steps)
        return min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    def prior_ce(tokens: AVTokenizerOutput) -> torch.Tensor:
        codes = model.codes_of(tokens)
        codes = codes.detach() if args.prior_detach else codes
        logits = model.prior(codes, model.token_positions(tokens.modalities))
        return ar_prior_loss(logits, tokens.indices)

    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for step in range(args.steps + 1 if args.steps else 0):
        if step % max(1, args.steps // 4) == 0:
            model.eval()
            with torch.no_grad():
                sub = train[::8]
                tokens_held, rec_held = model(video=held)
                tokens, rec_train = model(video=sub)
                ce = ""
                if args.prior_weight > 0:
                    ce = f", prior CE held-out {float(prior_ce(tokens_held)):.3f}"
            model.train()
            print(f"{args.preset} ({cfg.video_tokens} video tokens, codebook {cfg.codebook_size}) "
                  f"{args.token_init} step {step:5d}: held-out "
                  f"{psnr(rec_held.video, held):.2f} dB, train {psnr(rec_train.video, sub):.2f} dB, "
                  f"latent spread across windows {float(tokens.latents.std(0).mean()):.3f}, "
                  f"codes used {tokens.indices.unique().numel()}{ce}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        if step == args.steps:
            break
        batch = train[torch.randint(len(train), (8,), generator=gen)]
        tokens, rec = model(video=batch)
        loss = (rec.video - batch).abs().mean()
        if args.prior_weight > 0:
            loss = loss + args.prior_weight * prior_ce(tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    sweep = tuple(k for k in (1, 2, 4, 8, 16, 32) if k <= cfg.video_patch_dim)
    codec = PatchPCA(train, cfg.video_patch)
    pca = {k: psnr(codec.with_k(k).project(held), held) for k in (cfg.code_dim, *sweep)}
    print(f"per-patch PCA, {cfg.code_dim} numbers per {cfg.video_patch} patch: held-out "
          f"{pca[cfg.code_dim]:.2f} dB")
    print(f"per-patch PCA by numbers per {cfg.video_patch} patch ({cfg.num_video_patches} patches a window): "
          + ", ".join(f"{k}: {pca[k]:.2f}" for k in sweep) + " dB")
    print(f"mean-frame baseline (each held-out window's own mean frame): "
          f"{psnr(held.mean(1, keepdim=True).expand_as(held), held):.2f} dB")


if __name__ == "__main__":
    main()
