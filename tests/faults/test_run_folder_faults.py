"""Issue 28 items 1, 3, 4, 5, 6, 7 on a real tokenizer run (tiny AV, 3 s of the concert clip, 4 steps).

Each test reproduces the reported fault and asserts the new behaviour; every one of them fails on the code
before this change (commit 41d0859; see docs/evidence/faults.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from avtok.tokenizer.cli import app
from avtok.tokenizer.runner import train_tokenizer
from avtok.train import CheckpointManager, RunFolderError, TrainingDiverged
from avtok.train.pretrained import from_pretrained

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(clip3s, tmp_path_factory, cli_args) -> Path:
    """A finished 4-step run written by the CLI (checkpoints at steps 2 and 4, final/)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    result = runner.invoke(app, cli_args(clip3s, run))
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    (dst / "run.lock").unlink(missing_ok=True)
    return dst


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return from_pretrained(path).state_dict()


def _said(result) -> str:
    """What a failed command told the user (its output, or the exception it ended with), on one line."""
    return " ".join(f"{result.output} {result.exception or ''}".split())


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- 1: re-run into a used folder


def test_rerun_without_resume_is_refused_and_overwrite_moves_the_old_run_aside(clip3s, run_copy, cli_args):
    before = _weights(run_copy / "final")
    result = runner.invoke(app, cli_args(clip3s, run_copy, "--max-steps", "2"))
    assert result.exit_code == 2 and result.output.rstrip().splitlines()[-1].startswith("error: ")
    assert "--resume" in _said(result) and "--overwrite" in _said(result) and "tiny-av" in _said(result)
    assert _same(_weights(run_copy / "final"), before)  # the old model is not shipped as the new one

    result = runner.invoke(app, cli_args(clip3s, run_copy, "--max-steps", "2", "--overwrite"))
    assert result.exit_code == 0, result.output
    aside = list(run_copy.parent.glob("run.replaced-*"))
    assert len(aside) == 1 and _same(_weights(aside[0] / "final"), before)  # moved, not deleted
    assert not _same(_weights(run_copy / "final"), before)  # final/ is the new 2-step model
    assert CheckpointManager(run_copy / "0-joint").steps() == [1, 2]


def test_retention_keeps_the_newest_steps_of_this_run(trained, tmp_path):
    """An older run left step 600 behind; a new run that saves step 2 with keep_last=1 must keep step 2."""
    ckpt = CheckpointManager(trained / "0-joint").load()
    mgr = CheckpointManager(tmp_path, keep_last=1)
    ckpt.step = 600
    mgr.save(ckpt)
    ckpt.step = 2
    ckpt.model = {k: v + 1 for k, v in ckpt.model.items()}
    mgr.save(ckpt)
    assert mgr.steps() == [2] and mgr.latest() == mgr.path(2)
    assert torch.equal(mgr.load().model["streams.video.token_pos"], ckpt.model["streams.video.token_pos"])


# ---------------------------------------------------------------- 3: --resume with another preset


def test_resume_with_another_preset_is_refused_naming_both(clip3s, run_copy, tiny_run, cli_args):
    with pytest.raises(RunFolderError, match=r"tiny-av.*small-av.*preset 'tiny' -> 'small'"):
        train_tokenizer(tiny_run(clip3s, run_copy, preset="small"), resume=True)
    result = runner.invoke(app, [*cli_args(clip3s, run_copy, "--resume"), "--preset", "small-av"])
    assert result.exit_code != 0 and "preset 'tiny' -> 'small'" in _said(result)


def test_resume_of_an_unlabelled_run_with_another_preset_fails_on_shapes(clip3s, run_copy, tiny_run):
    (run_copy / "run.json").unlink(missing_ok=True)  # a run folder written before run identities existed
    with pytest.raises(RunFolderError, match="does not fit this model"):
        train_tokenizer(tiny_run(clip3s, run_copy, preset="small"), resume=True)


# ---------------------------------------------------------------- 4: two live runs in one folder


def test_second_live_run_is_refused_and_a_stale_lock_is_taken_over(clip3s, run_copy, caplog, tiny_run):
    import json
    import socket

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = run_copy / "run.lock"
        lock.write_text(json.dumps({"pid": owner.pid, "host": socket.gethostname(), "started": "now"}))
        with pytest.raises(
            RunFolderError, match=f"another training run is writing here \\(process {owner.pid}"
        ):
            train_tokenizer(tiny_run(clip3s, run_copy), resume=True)
    finally:
        owner.kill()
        owner.wait()
    _, results = train_tokenizer(tiny_run(clip3s, run_copy), resume=True)  # the owner is gone: stale lock
    assert results[0].skipped and "stale lock" in caplog.text
    assert not (run_copy / "run.lock").exists()  # released at the end


# ---------------------------------------------------------------- 5: corrupt checkpoints


def test_truncated_newest_checkpoint_falls_back_with_a_warning(clip3s, run_copy, caplog, tiny_run):
    stage = run_copy / "0-joint"
    bad = stage / "step-00000004" / "model.safetensors"
    bad.write_bytes(bad.read_bytes()[:100])
    (stage / "done.json").write_text("")  # an empty marker (the stage counts as unfinished)
    _, results = train_tokenizer(tiny_run(clip3s, run_copy), resume=True)
    assert (results[0].start_step, results[0].steps) == (2, 4)  # continued from the intact step 2
    assert (
        str(bad) in caplog.text and "falling back" in caplog.text and "done.json: unreadable" in caplog.text
    )


def test_truncated_optimizer_and_explicit_path_name_the_file(run_copy, caplog):
    stage = run_copy / "0-joint"
    opt = stage / "step-00000004" / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[:50])
    assert CheckpointManager(stage).load().step == 2 and str(opt) in caplog.text
    with pytest.raises(ValueError, match=str(opt)):
        CheckpointManager(stage).load(stage / "step-00000004")
    weights = run_copy / "final" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(ValueError, match=f"{weights}: unreadable"):
        from_pretrained(run_copy / "final")


def test_final_model_is_replaced_atomically(clip3s, run_copy, monkeypatch, cli_args):
    before = _weights(run_copy / "final")

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("avtok.train.pretrained.save_file", crash)
    result = runner.invoke(app, cli_args(clip3s, run_copy, "--resume"))
    assert result.exit_code != 0
    monkeypatch.undo()
    assert _same(_weights(run_copy / "final"), before)  # the crash left the previous final/ intact


# ---------------------------------------------------------------- 6: divergence guard


def test_diverged_run_stops_with_a_clear_message_and_no_nan_checkpoint(clip3s, tmp_path, tiny_run):
    cfg = tiny_run(clip3s, tmp_path / "run", lr=1e5, max_steps=8, max_nonfinite_steps=3)
    with pytest.raises(TrainingDiverged, match="3 consecutive non-finite steps.*--lr"):
        train_tokenizer(cfg)
    for step_dir in (tmp_path / "run" / "0-joint").glob("step-*"):
        ckpt = CheckpointManager(step_dir.parent).load(step_dir)
        assert all(torch.isfinite(v).all() for v in ckpt.model.values() if v.is_floating_point())


# ---------------------------------------------------------------- 7: extending --max-steps on resume


class _Recorder:
    def __init__(self):
        self.metrics: dict[int, dict] = {}

    def log_params(self, params): ...

    def log_metrics(self, metrics, step=None):
        self.metrics.setdefault(step, {}).update(metrics)

    def log_artifact(self, path, artifact_path=None): ...

    def close(self, status="FINISHED"): ...


def test_extending_max_steps_replans_the_cosine(clip3s, run_copy, caplog, tiny_run):
    rec = _Recorder()
    cfg = tiny_run(clip3s, run_copy, max_steps=8)
    _, results = train_tokenizer(cfg, tracker=rec, resume=True)
    assert (results[0].start_step, results[0].steps) == (4, 8)
    lr5 = rec.metrics[5]["0-joint/train/lr"]  # the first extension step (the lr the step used)
    floor = cfg.lr / 10
    assert lr5 > 3 * floor, f"extension trained at the floor lr {lr5}"  # old code: exactly the floor
    assert "re-planned" in caplog.text and "max_steps 4 -> 8" in caplog.text
