"""The released Ovi, number for number: fixtures recorded with the official code (``ovi_fusion``,
``ovi_unipc``), loaded through ``avtok-generator convert --from ovi``.

Shapes, lengths, guidance scales, shift, step counts and the skip layer all come from the fixture files,
so another fixture set of the same layout (other seed and shapes) runs unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from avtok.generator.ovi.convert import convert_ovi
from avtok.generator.ovi.solvers import UniPC, ovi_schedule
from avtok.train.pretrained import from_pretrained

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(os.environ.get("AVTOK_FIXTURES", ROOT.parent / "shared" / "fixtures")) / "ovi"
TOL = 2e-5


def check(ours: Tensor, ref: Tensor, name: str) -> None:
    assert ours.shape == ref.shape, f"{name}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    if not ref.is_floating_point():
        assert torch.equal(ours, ref), f"{name}: integers differ"
        return
    err = (ours.float() - ref.float()).abs().max().item()
    peak = ref.abs().max().item()
    assert err <= TOL * peak, f"{name}: max|diff| {err:.3g} vs max|ref| {peak:.3g}"


@pytest.fixture(scope="module")
def fusion(tmp_path_factory):
    """(converted model, io tensors, fixture JSON); the converter reads the official layout of files."""
    meta = json.loads((FIXTURES / "ovi_fusion.json").read_text())
    src = tmp_path_factory.mktemp("ovi_ckpt")
    shutil.copy(FIXTURES / "ovi_fusion.state_dict.safetensors", src / "model.safetensors")
    for tower in ("video", "audio"):  # the official ovi/configs/model/dit/{video,audio}.json, sizes reduced
        (src / f"{tower}.json").write_text(json.dumps(meta["config_used"][tower]))
    out = convert_ovi(src, tmp_path_factory.mktemp("ovi_avtok"))
    model = from_pretrained(out)
    io = load_file(str(FIXTURES / "ovi_fusion.io.safetensors"))
    return model, io, meta


def to_ours(video: Tensor) -> Tensor:
    return video.permute(1, 2, 3, 0).unsqueeze(0)  # (C, F, H, W) -> (1, F, H, W, C)


def to_ovi(video: Tensor) -> Tensor:
    return video[0].permute(3, 0, 1, 2)


def run(model, io, video, t, *, video_text, audio_text, **kw):
    tt = t.double() / 1000  # the model's t in [0, 1]; t·1000 is the official integer timestep
    with torch.no_grad():
        out = model(to_ours(video), io["audio_noise"][None], tt, tt, io[video_text][None],
                    text_audio=io[audio_text][None], **kw)
    return to_ovi(out.video), out.audio[0]


def test_converted_config_is_official(fusion):
    model, _, meta = fusion
    used = meta["config_used"]
    cfg = model.cfg
    video = used["video"]
    assert (cfg.dim, cfg.depth, cfg.heads, cfg.ffn_dim) == (
        video["dim"], video["num_layers"], video["num_heads"], video["ffn_dim"])
    assert (cfg.text_len, cfg.audio_rope_scale, cfg.audio_embed) == (
        used["video"]["text_len"], used["audio"]["temporal_rope_scaling_factor"], "conv")
    assert sum(p.numel() for p in model.parameters()) == meta["weights"]["num_parameters"]


def test_step0_positive_and_negative_passes(fusion):
    model, io, meta = fusion
    t = io["step0_timestep"]
    assert int(t) == int(io["scheduler_timesteps"][0])
    vid, aud = run(model, io, io["video_noise"], t, video_text="text_pos", audio_text="text_pos")
    check(vid, io["step0_vid_pos"], "step0_vid_pos")
    check(aud, io["step0_audio_pos"], "step0_audio_pos")
    slg = meta["inputs"]["slg_layer"]  # Ovi skips a block only for slg_layer > 0
    vid, aud = run(model, io, io["video_noise"], t, video_text="text_video_neg", audio_text="text_audio_neg",
                   skip_block=slg if slg > 0 else None)
    check(vid, io["step0_vid_neg"], "step0_vid_neg")
    check(aud, io["step0_audio_neg"], "step0_audio_neg")


def test_skip_layer_guidance_changes_the_negative_pass(fusion):
    model, io, meta = fusion
    vid, _ = run(model, io, io["video_noise"], io["step0_timestep"], video_text="text_video_neg",
                 audio_text="text_audio_neg")
    if meta["inputs"]["slg_layer"] > 0:  # the recorded negative pass skipped a block: without the skip, off
        assert (vid - io["step0_vid_neg"]).abs().max() > 100 * TOL * io["step0_vid_neg"].abs().max()
    else:  # no skip recorded: the plain negative pass is the reference
        check(vid, io["step0_vid_neg"], "step0_vid_neg")


def test_scheduler_and_guided_unipc_step(fusion):
    _, io, meta = fusion
    inputs = meta["inputs"]
    sch = ovi_schedule(inputs["sample_steps"], inputs["shift"])
    check(sch.sigmas, io["scheduler_sigmas"], "scheduler_sigmas")
    check(sch.timesteps, io["scheduler_timesteps"], "scheduler_timesteps")
    scales = inputs["guidance"]
    for name, noise, pos, neg, scale in (
        ("video", "video_noise", "step0_vid_pos", "step0_vid_neg", scales["video_guidance_scale"]),
        ("audio", "audio_noise", "step0_audio_pos", "step0_audio_neg", scales["audio_guidance_scale"]),
    ):
        guided = io[neg] + scale * (io[pos] - io[neg])  # the recorded velocities: this tests the step only
        check(UniPC(sch.sigmas).step(guided, io[noise]), io[f"step0_{name}_next"], f"step0_{name}_next")


def test_image_to_video_pass_with_clean_first_frame(fusion):
    model, io, meta = fusion
    sch = ovi_schedule(meta["inputs"]["sample_steps"], meta["inputs"]["shift"])
    t = io["i2v_timestep"]
    assert int(t) == int(sch.timesteps[meta["inputs"]["i2v_step"]])
    video = io["video_noise"].clone()
    video[:, :1] = io["i2v_image_latent"]
    vid, aud = run(model, io, video, t, video_text="text_pos", audio_text="text_pos", first_frame_clean=True)
    check(vid, io["i2v_vid_pos"], "i2v_vid_pos")
    check(aud, io["i2v_audio_pos"], "i2v_audio_pos")


def test_unipc_trajectory():
    meta = json.loads((FIXTURES / "ovi_unipc.json").read_text())
    io = load_file(str(FIXTURES / "ovi_unipc.io.safetensors"))
    steps = meta["config_used"]["set_timesteps"]
    sch = ovi_schedule(steps["num_inference_steps"], steps["shift"])
    check(sch.sigmas, io["sigmas"], "sigmas")
    check(sch.timesteps, io["timesteps"], "timesteps")
    solver, x = UniPC(sch.sigmas), io["sample_0"]
    for i in range(sch.steps):
        x = solver.step(io["model_outputs"][i], x)
        check(x, io["samples"][i], f"samples[{i}]")
