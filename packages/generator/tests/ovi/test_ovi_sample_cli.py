"""A converted Ovi model samples mp4s with sound through ``avtok-generator sample`` on Ovi's own path:
the fixture fusion weights through ``convert --from ovi``, the fixture VAEs / vocoder in Ovi's ckpt_dir
layout, and a tiny random umT5 (the fixture DiT's text_dim) as the text encoder — t2av and i2v."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from avtok.generator.cli import app
from avtok.generator.ovi.checkpoints import OVI_CHECKPOINT_FILES
from avtok.media_io import read_clip, sample_path

from .conftest import fixtures_dir


def _umt5_folder(folder, d_model: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a live band plays drums and guitar on stage"],
                            trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"]))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    cfg = UMT5Config(vocab_size=tok.get_vocab_size(), d_model=d_model, d_kv=8, d_ff=48, num_layers=1,
                     num_heads=4, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1)
    UMT5EncoderModel(cfg).save_pretrained(folder)


@pytest.fixture(scope="module")
def ovi_setup(tmp_path_factory, ovi_fixture):
    root = tmp_path_factory.mktemp("ovi_sample")
    meta = json.loads((fixtures_dir() / "ovi_fusion.json").read_text())
    (root / "fusion").mkdir()
    shutil.copy(fixtures_dir() / "ovi_fusion.state_dict.safetensors", root / "fusion" / "model.safetensors")
    for tower in ("video", "audio"):
        (root / "fusion" / f"{tower}.json").write_text(json.dumps(meta["config_used"][tower]))
    convert = ["convert", str(root / "fusion"), "--from", "ovi", "--out", str(root / "model")]
    res = CliRunner().invoke(app, convert)
    assert res.exit_code == 0, res.output
    (_, _, vstate), (_, _, astate) = ovi_fixture("ovi_video_vae"), ovi_fixture("ovi_audio_vae")
    files = {k: root / "ckpts" / v for k, v in OVI_CHECKPOINT_FILES.items()}
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
    torch.save(vstate, files["video_vae"])
    torch.save({k[4:]: v for k, v in astate.items() if k.startswith("vae.")}, files["audio_vae"])
    vocoder = {k[8:]: v for k, v in astate.items() if k.startswith("vocoder.")}
    torch.save({"generator": vocoder}, files["vocoder"])
    _umt5_folder(root / "umt5", meta["config_used"]["video"]["text_dim"])
    return root


@pytest.mark.parametrize("task", ["t2av", "i2v"])
def test_sample_writes_an_mp4_with_sound(ovi_setup, task):
    root = ovi_setup
    out = root / f"{task}.mp4"
    args = ["sample", "--model", str(root / "model"), "--ovi-ckpts", str(root / "ckpts"), "--text-encoder",
            str(root / "umt5"), "--prompt", "a live band <AUDCAP>drums<ENDAUDCAP>", "--task", task,
            "--frames", "5", "--size", "32", "--steps", "2", "--slg-layer", "1", "-o", str(out)]
    if task == "i2v":
        args += ["--input", str(sample_path("concert")), "--start", "3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    clip = read_clip(out)
    assert clip.video.shape[0] == 5 and clip.video.shape[1:3] == (32, 32)
    assert clip.sample_rate == 16000 and clip.audio.shape[-1] > 0


def test_missing_text_encoder_is_a_clear_error(ovi_setup):
    root = ovi_setup
    args = ["sample", "--model", str(root / "model"), "--ovi-ckpts", str(root / "ckpts"), "--prompt", "x",
            "-o", str(root / "x.mp4")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "umt5" in res.output.lower()


def test_lora_fine_tune_on_ovi_latents_then_sample(ovi_setup):
    root = ovi_setup
    out = root / "ft"
    args = ["train", "-o", str(out), "--init", str(root / "model"), "--ovi-ckpts", str(root / "ckpts"),
            "--text-encoder", str(root / "umt5"), "--frames", "5", "--size", "32", "--windows", "2",
            "--batch-size", "2", "--steps", "2", "--lora-rank", "2", "--loss-on", "audio"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "adapter" / "adapter_config.json").is_file()
    meta = json.loads((out / "pipeline.json").read_text())
    assert meta["codec"] == "ovi" and meta["text_encoder_files"]["folder"] == str(root / "umt5")
    res = CliRunner().invoke(app, ["sample", "--model", str(out), "--prompt", "a band", "--steps", "2",
                                   "-o", str(root / "ft.mp4")])
    assert res.exit_code == 0, res.output
    assert read_clip(root / "ft.mp4").video.shape[0] == 5
