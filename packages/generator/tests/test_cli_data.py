"""`avtok-generator train` / `train-ar` read their windows through the one data path (a folder with a bad
file: skipped and counted in the log and MLflow; the train split only; zero usable windows: a one-line
error naming --data) and claim --output as a run folder (a second run there is refused, --resume continues;
under torchrun rank 0 claims and every rank stops on a refusal).

Real media: 5 s cuts of the concert clip, plus a text file named .mp4."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from avtok.generator import cli
from avtok.generator.ar.pipeline import window_config
from avtok.generator.cli import app
from avtok.generator.ovi.latents import PooledAVLatents, PooledLatentConfig
from avtok.generator.ovi.text import TextEmbeddings
from avtok.generator.training_data import training_windows
from avtok.media_io import probe, read_clip, sample_path, write_clip
from avtok.tokenizer.av.model import build_av_tokenizer

runner = CliRunner()
CODEC = PooledLatentConfig(seconds=1.0, fps=8.0, size=32, pool=4, mel_pool=4)


def _cut(path: Path, start: float) -> Path:
    clip = read_clip(sample_path("concert"), start=start, duration=5.0, size=(48, 64), sample_rate=22050,
                     channels=1)
    return write_clip(path, clip)


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    """Two real 5 s clips and a text file named .mp4."""
    root = tmp_path_factory.mktemp("messy")
    _cut(root / "a.mp4", 10.0)
    _cut(root / "b.mp4", 30.0)
    (root / "notes.mp4").write_text("not a video\n" * 50)
    return root


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    last = result.output.rstrip().splitlines()[-1]
    assert last.startswith("error: "), result.output
    return last


def _mlflow_metrics(db: Path, experiment: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FINISHED"
    return run.data.metrics


def test_windows_come_from_the_train_split_only(messy):
    """The last 2 s of every file are held out: no training window reaches into them; the bad file is
    counted, not fatal."""
    window = PooledAVLatents(CODEC).window_config(holdout_seconds=2.0)
    got = training_windows([str(messy)], window, count=100, seed=0)
    ends = {s: probe(s).duration - 2.0 for s in {c.source for c in got.clips}}
    assert {Path(s).name for s in ends} == {"a.mp4", "b.mp4"}
    assert all(c.start + 1.0 <= ends[c.source] + 1e-6 for c in got.clips)
    assert len(got.clips) == 2 * 3  # 3 whole 1 s windows in the first 3 s of each 5 s clip
    assert got.stats.files_skipped == 1 and got.stats.files_used == 2
    assert got.num_classes == 1 and set(got.labels) == {0}


def test_ar_classes_are_the_sources_in_order(messy):
    tok = build_av_tokenizer("tiny")
    window = window_config(tok, allow_silent=True)
    got = training_windows([str(messy / "b.mp4"), "concert"], window, count=12, seed=0)
    names = [Path(c.source).name for c in got.clips]
    assert got.num_classes == 2 and len(names) == 12
    assert [0 if n == "b.mp4" else 1 for n in names] == got.labels and set(got.labels) == {0, 1}
    assert got.clips[0].video.shape[1:3] == (tok.config.height, tok.config.width)


class _HashText:
    """A stand-in text encoder (seeded by the prompt's characters): the prompt is not what these tests are
    about, and MiniLM's load takes most of a cold test's time."""

    name, dim = "hash-text-test", 16

    def encode(self, prompts: list[str]) -> TextEmbeddings:
        rows = [torch.Generator().manual_seed(sum(map(ord, p))) for p in prompts]
        emb = torch.stack([torch.randn(4, self.dim, generator=g) for g in rows])  # (B, 4, D)
        return TextEmbeddings(embeddings=emb, mask=torch.ones(len(prompts), 4, dtype=torch.bool))


def test_train_counts_skipped_files_and_refuses_a_used_output(messy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --mlflow logs to ./mlflow.db
    monkeypatch.setattr(cli, "minilm_encoder", _HashText)
    out = tmp_path / "gen"
    args = ["train", "-o", str(out), "--data", str(messy), "--seconds", "1", "--windows", "2", "--steps", "1",
            "--batch-size", "2", "--preset", "tiny"]
    first = runner.invoke(app, [*args, "--mlflow"])
    assert first.exit_code == 0, first.output
    assert "2/3 files used (1 skipped)" in first.output
    metrics = _mlflow_metrics(tmp_path / "mlflow.db", "avtok-generator")
    assert metrics["data/files_skipped"] == 1 and metrics["data/files_used"] == 2
    meta = json.loads((out / "pipeline.json").read_text())
    assert meta["codec"] == "pooled" and meta["text_encoder"] == "hash-text-test"
    assert (out / "run.json").is_file() and not (out / "run.lock").exists()  # the lock is released
    line = _error_line(runner.invoke(app, args))
    assert str(out) in line and "--resume" in line and "--overwrite" in line and "--output" in line
    again = runner.invoke(app, [*args, "--resume"])  # the same run, already at its last step
    assert again.exit_code == 0, again.output
    other = _error_line(runner.invoke(app, [*args, "--resume", "--windows", "3"]))
    assert "--resume of a different run" in other and "windows" in other


def test_train_ar_refuses_a_used_output_and_names_data_without_windows(messy, tmp_path):
    out = tmp_path / "ar"
    args = ["train-ar", "-o", str(out), "--data", str(messy / "a.mp4"), "--windows", "2", "--steps", "1",
            "--batch-size", "2"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert (out / "config.json").is_file() and (out / "run.json").is_file()
    line = _error_line(runner.invoke(app, args))
    assert "--resume" in line and "--overwrite" in line and "--output" in line
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.mp4").write_text("not a video\n")
    line = _error_line(runner.invoke(app, ["train-ar", "-o", str(tmp_path / "ar2"), "--data", str(bad)]))
    assert line.startswith(f"error: --data {bad}") and "notes.mp4" in line
    assert not (tmp_path / "ar2").exists()  # nothing claimed or written for a failed data check


@pytest.mark.slow  # two torchrun launches, ~35 s on 2 shared cores
def test_train_ar_under_torchrun_and_a_used_output_stops_every_rank(tmp_path):
    """2 gloo ranks: DDP training of the AR model (its loss reads the config through the DDP wrapper), rank 0
    alone claims and writes --output; a second launch into it stops both ranks with the one-line error."""
    out = tmp_path / "ar"

    def launch() -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
               "127.0.0.1", "--master-port", str(_free_port()), "-m", "avtok.generator.cli", "train-ar", "-o",
               str(out), "--windows", "4", "--steps", "2", "--batch-size", "4"]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)

    first = launch()
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert first.stdout.count("trained 2 steps") == 1 and first.stdout.count("data: 1/1 files used") == 1
    assert (out / "config.json").is_file() and (out / "run.json").is_file()
    assert not (out / "run.lock").exists()
    second = launch()
    assert second.returncode != 0
    refusals = [ln for ln in (second.stdout + second.stderr).splitlines()
                if ln.startswith("error: ") and "--resume" in ln and "--output" in ln]
    assert len(refusals) == 2, second.stdout[-2000:] + second.stderr[-2000:]  # one per rank, no hang


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
