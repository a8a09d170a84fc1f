"""2 gloo processes (DDP, then FSDP2) vs one process with the doubled batch: same loss curve."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from avtok.train import ResumableLoader, TrainConfig, Trainer
from avtok.train.distributed import all_reduce_mean, any_rank, dist_info, wrap_model

pytestmark = pytest.mark.slow
STEPS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory, workers_dir: Path) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(workers_dir / "dist_worker.py"), "--out", str(out),
           "--port", str(_free_port()), "--steps", str(STEPS)]
    subprocess.run(cmd, env=env, check=True, timeout=300)
    return {s: json.loads((out / f"{s}.json").read_text()) for s in ("ddp", "fsdp2")}


@pytest.fixture(scope="module")
def one_process(toy, tmp_path_factory) -> dict:
    cfg = TrainConfig(lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=STEPS, ema_decay=0.9, log_every=1,
                      progress=False, lr_multipliers={"encoder": 0.1})
    tracker = toy.ListTracker()
    loader = ResumableLoader(toy.make_dataset(64), batch_size=16, seed=1)
    trainer = Trainer(toy.make_model(), toy.step_fn, loader, cfg, tracker=tracker)
    trainer.fit()
    return {"loss": tracker.series("train/loss"), "grad_norm": tracker.series("train/grad_norm"),
            "params": {k: v.tolist() for k, v in trainer.module.state_dict().items()},
            "ema": {k: v.tolist() for k, v in trainer.ema.state_dict().items()}}


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_ranks_match_one_process_with_doubled_batch(strategy, two_rank_runs, one_process):
    run = two_rank_runs[strategy]
    ref_loss = {int(k): v for k, v in one_process["loss"].items()}
    loss = {int(k): v for k, v in run["loss"].items()}
    assert sorted(loss) == list(range(1, STEPS + 1))
    assert [loss[s] for s in sorted(loss)] == pytest.approx([ref_loss[s] for s in sorted(ref_loss)], rel=1e-5)
    assert ref_loss[STEPS] < ref_loss[1]
    gn = {int(k): v for k, v in run["grad_norm"].items()}
    assert [gn[s] for s in sorted(gn)] == pytest.approx([one_process["grad_norm"][s] for s in sorted(gn)],
                                                        rel=1e-4)
    for name, ref in one_process["params"].items():
        torch.testing.assert_close(torch.tensor(run["params"][name]), torch.tensor(ref), atol=1e-5, rtol=1e-4)
        assert run["reloaded"][name] == run["params"][name]  # checkpoint round trip under the strategy
    for name, ref in one_process["ema"].items():  # EMA (sharded under FSDP2) gathered to full tensors
        torch.testing.assert_close(torch.tensor(run["ema"][name]), torch.tensor(ref), atol=1e-5, rtol=1e-4)


def test_single_process_helpers_are_identities():
    assert dist_info().world_size == 1 and not dist_info().enabled
    assert all_reduce_mean({"a": 2.0}) == {"a": 2.0} and any_rank(True) and not any_rank(False)
    model = nn.Linear(2, 2)
    assert wrap_model(model, "auto") is model
    with pytest.raises(RuntimeError, match="torchrun"):
        wrap_model(model, "ddp")
