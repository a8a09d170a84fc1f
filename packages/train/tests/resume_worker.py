"""Subprocess for the kill/resume test: trains the toy problem, one JSONL line per step, checkpoints."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from toy_problem import JsonlTracker, make_dataset, make_model, step_fn  # noqa: E402

from avtok.train import ResumableLoader, TrainConfig, Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    def slow_step(model, batch):
        time.sleep(args.delay)  # gives the parent time to SIGKILL mid-run
        return step_fn(model, batch)

    cfg = TrainConfig(lr=5e-3, min_lr=5e-4, warmup_steps=3, max_steps=args.steps, grad_accum=2, ema_decay=0.9,
                      checkpoint_dir=args.ckpt, checkpoint_every=4, keep_last=2, log_every=1, progress=False,
                      lr_multipliers={"encoder": 0.5})
    loader = ResumableLoader(make_dataset(40), batch_size=6, seed=3)  # 6 batches/epoch: epochs roll over
    tracker = JsonlTracker(args.out / "log.jsonl")
    trainer = Trainer(make_model(dropout=0.2), slow_step, loader, cfg, tracker=tracker)
    trainer.fit(resume=args.resume)
    final = {f"model.{k}": v.contiguous() for k, v in trainer.module.state_dict().items()}
    final |= {f"ema.{k}": v for k, v in trainer.ema.state_dict().items()}
    save_file(final, str(args.out / "final.safetensors"))


if __name__ == "__main__":
    main()
