"""What the default `avtok-tokenizer train` gives on the held-out data, without the frame-FID report.

Trains `tiny-av` with the CLI's CPU defaults (cheap loss set, VFAL, batch 8, the preset's lr) for --steps,
then scores the held-out windows and the whole held-out tail (PSNR / standard SSIM) next to the trivial
baselines; prints one JSON line. Used for docs/evidence/tokenizer.md, "Default CPU run":

    python tools/probe_default_run.py --steps 2000 --seed 0 --out runs/default_s0
    python tools/probe_default_run.py --steps 2000 --lr 1e-3 --out runs/default_lr1e-3
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from avtok.tokenizer.av import recipe
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.runner import train_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--schedule", default="vfal")
    ap.add_argument("--lr", type=float, default=None, help="default: the preset's (RunConfig.DEFAULT_LR)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="a new checkpoint folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = RunConfig(family="av", preset="tiny", schedule=args.schedule, max_steps=args.steps, lr=args.lr,
                    batch_size=args.batch, checkpoint_dir=args.out, perceptual=False, mrstft=False,
                    artifacts=False, seed=args.seed, eval_every=10**6)
    start = time.time()
    model, results = train_tokenizer(cfg)
    seconds = time.time() - start
    ctx = recipe.prepare(cfg)
    scores = {}
    for what, clips in (("per_window", ctx.held_out), ("heldout_tail", ctx.held_clips)):
        summary = recipe.heldout_report(model.cpu().eval(), clips, frame_fid=False)
        scores[what] = {row["model"]: {"psnr": round(row["psnr"], 2), "ssim": round(row["ssim"], 3)}
                        for row in summary.iter_rows(named=True)}
    print(json.dumps({"lr": cfg.lr, "seed": args.seed, "steps": [r.steps for r in results],
                      "train_seconds": round(seconds, 1), **scores}))


if __name__ == "__main__":
    main()
