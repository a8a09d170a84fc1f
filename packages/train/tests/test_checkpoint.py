"""Atomic checkpoints: round trip of every state, keep-last-K + best, safe loading, data position."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from avtok.train import (
    Checkpoint,
    CheckpointManager,
    ResumableLoader,
    SkipAheadIterator,
    capture_rng,
    restore_rng,
)


def _ckpt(step: int, value: float = 0.0) -> Checkpoint:
    model = {"w": torch.full((2, 2), value), "tied": torch.ones(3)}
    model["tied_again"] = model["tied"]  # tied weights share storage
    optim = {"state": {0: {"step": torch.tensor(float(step)), "exp_avg": torch.randn(2, 2)}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.95), "params": [0], "names": ["w"]}]}
    return Checkpoint(step=step, model=model, ema={"w": torch.zeros(2, 2)}, optimizer=optim,
                      state={"data": {"epoch": 1, "batch": step}, "scheduler": {"last_epoch": step}},
                      rng=[capture_rng(), capture_rng()])


def test_round_trip_of_every_state(tmp_path: Path):
    mgr = CheckpointManager(tmp_path)
    ck = _ckpt(5, value=2.5)
    path = mgr.save(ck)
    assert path.name == "step-00000005" and mgr.latest() == path
    assert sorted(p.name for p in path.iterdir()) == ["ema.safetensors", "model.safetensors", "optimizer.pt",
                                                      "rng.safetensors", "state.json"]
    back = mgr.load()
    assert back.step == 5 and torch.equal(back.model["w"], ck.model["w"])
    assert torch.equal(back.model["tied_again"], torch.ones(3))
    assert torch.equal(back.optimizer["state"][0]["exp_avg"], ck.optimizer["state"][0]["exp_avg"])
    assert back.optimizer["param_groups"][0]["betas"] == (0.9, 0.95)
    assert back.state["data"] == {"epoch": 1, "batch": 5} and len(back.rng) == 2
    assert json.loads((path / "state.json").read_text())["step"] == 5


def test_rng_capture_restore_reproduces_draws():
    state = capture_rng()
    a = (torch.rand(3), random.random())
    restore_rng(state)
    b = (torch.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and a[1] == b[1]


def test_keep_last_k_and_best(tmp_path: Path):
    mgr = CheckpointManager(tmp_path, keep_last=2, best_mode="min")
    metrics = {1: 0.9, 2: 0.3, 3: 0.5, 4: None, 5: 0.4}
    for step, metric in metrics.items():
        mgr.save(_ckpt(step), metric=metric)
    assert mgr.steps() == [2, 4, 5]  # last two + the best (step 2, value 0.3)
    assert mgr.best() == {"step": 2, "value": 0.3}


def test_torn_write_is_invisible_and_replaced(tmp_path: Path):
    mgr = CheckpointManager(tmp_path)
    mgr.save(_ckpt(3))
    torn = tmp_path / ".tmp-step-00000006-999"  # what a SIGKILL during a save leaves behind
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"partial")
    assert mgr.steps() == [3] and mgr.load().step == 3
    mgr.save(_ckpt(3, value=7.0))  # re-saving a step replaces it whole
    assert mgr.load().model["w"][0, 0].item() == 7.0


def test_optimizer_file_is_loaded_with_weights_only(tmp_path: Path, monkeypatch):
    mgr = CheckpointManager(tmp_path)
    path = mgr.save(_ckpt(1))
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    mgr.load(path)
    assert seen.get("weights_only") is True


def test_missing_checkpoint_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        CheckpointManager(tmp_path).load()


def test_resumable_loader_position_and_sharding(toy):
    data = toy.make_dataset(20)
    loader = ResumableLoader(data, batch_size=6, seed=4)  # 3 batches per epoch, tail of 2 dropped
    seq = [next(loader)[0] for _ in range(7)]
    again = ResumableLoader(data, batch_size=6, seed=4)
    for _ in range(4):
        next(again)
    state = again.state_dict()
    assert state == {"epoch": 1, "batch": 1, "seed": 4}
    fresh = ResumableLoader(data, batch_size=6, seed=4)
    fresh.load_state_dict(state)
    assert all(torch.equal(next(fresh)[0], seq[i]) for i in range(4, 7))
    ranks = [ResumableLoader(data, batch_size=3, seed=4, rank=r, world_size=2) for r in range(2)]
    whole = ResumableLoader(data, batch_size=6, seed=4)
    for _ in range(4):  # two ranks' half batches concatenate to the single-process batch
        assert torch.equal(torch.cat([next(r)[0] for r in ranks]), next(whole)[0])
    with pytest.raises(ValueError, match="seed"):
        fresh.load_state_dict({"epoch": 0, "batch": 0, "seed": 99})


def test_skip_ahead_iterator_for_plain_iterables():
    it = SkipAheadIterator([1, 2, 3])
    assert [next(it) for _ in range(5)] == [1, 2, 3, 1, 2]
    other = SkipAheadIterator([1, 2, 3])
    other.load_state_dict(it.state_dict())
    assert next(other) == 3
