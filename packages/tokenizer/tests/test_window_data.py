"""The tokenizer recipes read their windows through avtok.media_io's WindowDataset: an exact resume of a
stage continues the data stream (no window repeated or skipped), a folder with a damaged file trains on
the rest and counts the skip (log + tracker), and an empty folder is a one-line error."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from avtok.media_io import read_clip, sample_path, write_clip
from avtok.tokenizer.av import recipe as recipes_av
from avtok.tokenizer.cli import app
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.runner import train_tokenizer


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """4.5 s of the real concert clip (its audio included) as an mp4."""
    clip = read_clip(sample_path("concert"), start=12.0, duration=4.5)
    return write_clip(tmp_path_factory.mktemp("clip") / "concert_4s.mp4", clip)


class _Recorder:
    """A tracker that keeps the metrics it is given."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def log_params(self, params) -> None:
        pass

    def log_metrics(self, metrics, *, step=None) -> None:
        self.metrics.update(metrics)

    def log_artifact(self, path, *, artifact_path=None) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass


def _record_windows(monkeypatch) -> list[list[float]]:
    """Spy on the AV recipe's stream: the window start times of every training batch, in order."""
    seen: list[list[float]] = []
    original = recipes_av.hooks

    def spy(cfg, ctx, model, stage):
        h = original(cfg, ctx, model, stage)
        for stream in h.data.sources.values():
            inner = stream.transform

            def transform(batch, inner=inner):
                seen.append([round(float(s), 4) for s in batch.start])
                return inner(batch)

            stream.transform = transform
        return h

    monkeypatch.setattr(recipes_av, "hooks", spy)
    return seen


def test_exact_resume_of_a_stage_resumes_the_data_order(short_clip, tmp_path, monkeypatch) -> None:
    def cfg(run: str, steps: int) -> RunConfig:
        return RunConfig(schedule="vanilla", data=str(short_clip), holdout_seconds=1.0, max_steps=steps,
                         batch_size=2, eval_windows=1, eval_every=1000, perceptual=False, mrstft=False,
                         checkpoint_dir=tmp_path / run, artifacts=False, seed=3)

    seen = _record_windows(monkeypatch)
    train_tokenizer(cfg("whole", 4))
    whole = list(seen)
    seen.clear()
    _, first = train_tokenizer(cfg("split", 2))
    _, second = train_tokenizer(cfg("split", 4), resume=True)
    assert first[0].steps == 2 and second[0].start_step == 2 and second[0].steps == 4
    assert seen == whole  # steps 1-2, then 3-4 after the resume: the uninterrupted run's batches
    starts = [s for batch in whole for s in batch]
    assert len(starts) == 8 and len(set(starts)) == 8  # one epoch holds ~11 windows: none repeated
    assert starts != sorted(starts)  # shuffled


def test_train_on_a_folder_skips_and_counts_a_bad_file(short_clip, tmp_path, caplog) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(short_clip.read_bytes())
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # not decodable
    args = ["train", "--preset", "tiny-av", "--data", str(folder), "--schedule", "vanilla",
            "--holdout-seconds", "1", "--checkpoint-dir", str(tmp_path / "run"), "--batch-size", "2",
            "--max-steps", "2", "--no-report", "--eval-windows", "1", "--no-perceptual", "--no-mrstft"]
    with caplog.at_level(logging.WARNING, logger="avtok.tokenizer"):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1/2 files used (1 skipped)" in caplog.text and "skipped " + str(folder / "broken.mp4") in caplog.text

    tracker = _Recorder()
    cfg = RunConfig(schedule="vanilla", data=str(folder), holdout_seconds=1.0, max_steps=1, batch_size=2,
                    eval_windows=1, perceptual=False, mrstft=False, checkpoint_dir=tmp_path / "api",
                    artifacts=False)
    train_tokenizer(cfg, tracker=tracker)
    assert tracker.metrics["0-joint/data/files_skipped"] == 1
    assert tracker.metrics["0-joint/data/files_used"] == 1
    assert tracker.metrics["0-joint/data/windows_yielded"] >= 2


def test_an_empty_folder_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["train", "--preset", "tiny-av", "--data", str(tmp_path / "empty"),
                                      "--checkpoint-dir", str(tmp_path / "run")])
    assert result.exit_code != 0
    text = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert "no media files found; fix: pass a folder with video files" in text
