"""Subprocess for the multi-process test: 2 gloo ranks (mp.spawn) train the toy problem with DDP, then FSDP2.

Writes ``<out>/<strategy>.json``: rank 0's per-step (all-reduced) losses and the final full parameters.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
from toy_problem import ListTracker, make_dataset, make_model, step_fn  # noqa: E402


def run(strategy: str, rank: int, world: int, out: Path, steps: int) -> None:
    from torch import nn

    from avtok.train import ResumableLoader, TrainConfig, Trainer
    from avtok.train.state_dicts import full_ema_state, full_model_state

    cfg = TrainConfig(lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=steps, ema_decay=0.9, log_every=1,
                      strategy=strategy, progress=False, checkpoint_dir=out / f"ckpt-{strategy}",
                      checkpoint_every=steps, lr_multipliers={"encoder": 0.1})
    tracker = ListTracker()
    loader = ResumableLoader(make_dataset(64), batch_size=16 // world, rank=rank, world_size=world, seed=1)
    model = make_model(seed=rank)  # ranks start different: DDP and the FSDP2 wrapper broadcast rank 0's
    trainer = Trainer(model, step_fn, loader, cfg, tracker=tracker, shard_modules=(nn.Linear,))
    trainer.fit()
    params = {k: v.tolist() for k, v in full_model_state(trainer.model).items()}
    ema = {k: v.tolist() for k, v in full_ema_state(trainer.model, trainer.ema).items()}
    resumed = Trainer(make_model(seed=5), step_fn, loader, cfg, shard_modules=(nn.Linear,))
    resumed.load_checkpoint()  # FSDP2/DDP checkpoint round trip: full tensors back into the wrapped model
    reloaded = {k: v.tolist() for k, v in full_model_state(resumed.model).items()}
    if rank == 0:
        payload = {"loss": tracker.series("train/loss"), "grad_norm": tracker.series("train/grad_norm"),
                   "params": params, "ema": ema, "reloaded": reloaded}
        (out / f"{strategy}.json").write_text(json.dumps(payload))


def worker(rank: int, world: int, port: int, out: str, steps: int, strategies: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from avtok.train import init_distributed

    init_distributed()
    for strategy in strategies:
        run(strategy, rank, world, Path(out), steps)
    # Teardown. A rank has aborted twice in `.ci/run` ("terminate called without an active exception",
    # SIGABRT); the second time despite the barrier and *after* both result files were written; not
    # reproduced in 22 local runs, idle or loaded. That message is most likely a C++ thread object
    # destroyed unjoined at interpreter exit. So: free the DDP / FSDP2 wrappers (reference cycles) while
    # the group is alive, leave the group together, and skip the exit-time destructors. A failure in
    # ``run`` still raises before this point and fails the test.
    gc.collect()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--strategies", default="ddp,fsdp2")
    args = ap.parse_args()
    mp.spawn(worker, args=(2, args.port, args.out, args.steps, args.strategies.split(",")), nprocs=2)
