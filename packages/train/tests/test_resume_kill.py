"""Kill test: train in a subprocess, SIGKILL it after a checkpoint, resume in a new process, compare with
an uninterrupted run: per-step losses and final weights (model and EMA) must be bit-identical on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def _worker(workers_dir: Path, ckpt: Path, out: Path, *extra: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    return [sys.executable, str(workers_dir / "resume_worker.py"), "--ckpt", str(ckpt), "--out", str(out),
            "--steps", "12", *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, workers_dir: Path):
    ref_out, run_out = tmp_path / "ref", tmp_path / "run"
    proc = subprocess.Popen(_worker(workers_dir, tmp_path / "ck-run", run_out, "--delay", "0.15"), env=_env())
    deadline = time.monotonic() + 120
    while not (tmp_path / "ck-run" / "step-00000004").is_dir():
        assert proc.poll() is None, "worker exited before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    assert proc.poll() is None, "the worker finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(_losses(run_out))
    assert killed_at < 12 and not (run_out / "final.safetensors").exists()

    subprocess.run(_worker(workers_dir, tmp_path / "ck-run", run_out, "--resume"), env=_env(), check=True,
                   timeout=240)
    subprocess.run(_worker(workers_dir, tmp_path / "ck-ref", ref_out), env=_env(), check=True, timeout=240)
    ref, resumed = _losses(ref_out), _losses(run_out)
    assert sorted(ref) == list(range(1, 13)) and resumed.keys() == ref.keys()
    assert all(resumed[s] == ref[s] for s in ref), {s: (resumed[s], ref[s]) for s in ref}
    a, b = load_file(str(ref_out / "final.safetensors")), load_file(str(run_out / "final.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
