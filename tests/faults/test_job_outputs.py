"""Issue 28 item 2: ``avtok demo --data DIR --out DIR`` deleted the user's videos before validating anything.

The job now refuses a non-empty folder it did not write, and a later run removes only the files listed in
the previous run's manifest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from avtok.eval.tracking import NullTracker
from avtok.generator.job import cli as job
from avtok.generator.job.config import DemoConfig
from avtok.generator.job.outputs import MANIFEST, OutputFolder


@pytest.fixture
def videos(clip3s, tmp_path) -> Path:
    """A user's folder: a real sounding video, a picture and a table."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(clip3s, folder / "holiday.mp4")
    (folder / "cover.png").write_bytes(b"\x89PNG user picture")
    (folder / "budget.csv").write_text("a,b\n1,2\n")
    return folder


def test_out_pointing_at_the_users_videos_deletes_nothing(videos, monkeypatch):
    def no_training(*args, **kwargs):  # the job must stop before any phase; if it gets here, stop anyway
        raise RuntimeError("the job went on to train")

    monkeypatch.setattr(job, "_tokenizer_phase", no_training)
    before = {p.name: p.read_bytes() for p in videos.iterdir()}
    cfg = DemoConfig(data=str(videos), out=str(videos), cache=str(videos.parent / "cache"), max_steps=1)
    with pytest.raises(ValueError, match=r"--out .*holds 3 files the main job did not write"):
        job.run(cfg, NullTracker(), Console(quiet=True))
    assert {p.name: p.read_bytes() for p in videos.iterdir()} == before


def test_a_later_run_removes_only_the_files_its_manifest_lists(tmp_path):
    out = tmp_path / "report"
    first = OutputFolder.open(out)
    first.clean()
    for name in ("report.html", "tok_frames.png", "generation.csv"):
        (out / name).write_text(name)
    assert sorted(p.name for p in first.commit()) == ["generation.csv", "report.html", "tok_frames.png"]
    (out / "notes.txt").write_text("the user's notes, added later")
    (out / "tok_extra.png").write_text("the user's picture, added later")
    second = OutputFolder.open(out)
    assert sorted(second.clean()) == ["generation.csv", "report.html", "tok_frames.png"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "notes.txt", "tok_extra.png"]
    (out / "report.html").write_text("new")
    second.commit()
    assert json.loads((out / MANIFEST).read_text())["files"] == ["report.html"]


def test_demo_command_reports_the_refusal_as_one_line(videos):
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        job.app, ["demo", "--data", str(videos), "--out", str(videos), "--no-track", "--max-steps", "1"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.rstrip().splitlines()[-1].startswith(f"error: --out {videos}: holds 3 files")
    assert (videos / "holiday.mp4").is_file()
