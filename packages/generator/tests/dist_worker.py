"""Subprocess for the generator's multi-rank test: 2 gloo ranks (mp.spawn) fine-tune the tiny twin DiT
(full, then LoRA) under DDP and FSDP2; also runs the one-process reference. Writes ``<out>/<run>.json``:
the per-step (all-reduced) losses and the final full trainable parameters."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

RUNS = ("ddp-full", "fsdp2-full", "ddp-lora", "fsdp2-lora")


class Losses:
    def __init__(self) -> None:
        self.loss: dict[int, float] = {}

    def log_params(self, params) -> None: ...

    def log_metrics(self, metrics, *, step=None) -> None:
        if "train/loss" in metrics:
            self.loss[int(step)] = float(metrics["train/loss"])

    def log_artifact(self, path, *, artifact_path=None) -> None: ...

    def close(self, status: str = "FINISHED") -> None: ...


def items() -> list[dict]:
    g = torch.Generator().manual_seed(3)
    return [{"video": torch.randn(2, 4, 4, 3, generator=g), "audio": torch.randn(6, 8, generator=g),
             "text": torch.randn(5, 16, generator=g), "seed": torch.tensor(i)} for i in range(4)]


def train(run: str, out: Path, steps: int) -> None:
    from avtok.generator import recipes
    from avtok.generator.ovi.config import build_config
    from avtok.generator.ovi.lora import LoraSettings, add_lora
    from avtok.generator.ovi.recipe import short_run_config
    from avtok.generator.ovi.twin_dit import TwinDiT
    from avtok.train.distributed import dist_info
    from avtok.train.state_dicts import full_model_state

    strategy, mode = run.split("-")
    torch.manual_seed(0)
    cfg = build_config("tiny", audio_channels=8, text_dim=16, video_patch=(1, 2, 2), audio_embed="conv",
                       text_len=8)
    model = TwinDiT(cfg)
    model.activation_checkpointing = mode == "full"  # exercised under both strategies
    if mode == "lora":
        torch.manual_seed(1)
        model = add_lora(model, LoraSettings(rank=2, alpha=4, targets=("self", "cross", "fusion", "ffn")))
    tcfg = short_run_config(lr=1e-2, steps=steps, checkpoint_dir=out / f"ckpt-{run}", warmup_steps=1,
                            log_every=1, progress=False)
    if strategy != "one":
        from dataclasses import replace

        tcfg = replace(tcfg, strategy=strategy)
    tracker = Losses()
    recipes.train_generator(model, items(), tcfg, batch_size=4, tracker=tracker)
    state = full_model_state(model)
    if dist_info().rank == 0:
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        trained = {k: v.tolist() for k, v in state.items() if k in names}
        (out / f"{run}.json").write_text(json.dumps({"loss": tracker.loss, "params": trained}))


def worker(rank: int, world: int, port: int, out: str, steps: int, runs: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from avtok.train import init_distributed

    init_distributed()
    for run in runs:
        train(run, Path(out), steps)
    gc.collect()  # teardown as in avtok.train's dist worker
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--one-process", action="store_true", help="the reference: one process, whole batch")
    args = ap.parse_args()
    if args.one_process:
        torch.set_num_threads(1)
        for run in args.runs.split(","):
            train(run.replace(run.split("-")[0], "one"), Path(args.out), args.steps)
    else:
        mp.spawn(worker, args=(2, args.port, args.out, args.steps, args.runs.split(",")), nprocs=2)
