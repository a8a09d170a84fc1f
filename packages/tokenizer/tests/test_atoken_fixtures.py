"""Golden outputs of the official AToken code (../shared/fixtures/atoken), reproduced through the converter;
then ``avtok-tokenizer convert`` + ``reconstruct`` end to end on the fixture-layout checkpoint written as an
official ``.pt``, the Python API on real media of odd sizes, and clear errors on bad input.

Each test writes the fixture's state dict as an official ``.pt`` and its config as the official YAML, runs
``convert_atoken`` (the code path of ``avtok-tokenizer convert --from atoken``), loads the avtok folder and
compares every tensor the fixtures README lists: ``max|ours - ref| <= 2e-5 * max|ref|``, integers equal.
Shapes come from the stored tensors (a second fixture set with other sizes is used for acceptance).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from avtok.media_io import probe, read_clip, sample_path
from avtok.tokenizer import GaussianDecoder, VisualTokenizer
from avtok.tokenizer.visual.convert import convert_atoken, read_state_dict
from avtok.tokenizer.cli import app
from safetensors.torch import load_file
from typer.testing import CliRunner

FIXTURES = Path(
    os.environ.get("AVTOK_FIXTURES", Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures")
)
ATOKEN = FIXTURES / "atoken"
REL_TOL = 2e-5

pytestmark = pytest.mark.skipif(
    not (ATOKEN / "atoken_soc.json").is_file(), reason=f"no AToken fixtures in {ATOKEN} (set AVTOK_FIXTURES)"
)


def assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert tuple(ours.shape) == tuple(ref.shape), f"{name}: shape {tuple(ours.shape)} vs {tuple(ref.shape)}"
    if not ref.is_floating_point():
        assert torch.equal(ours.to(ref.dtype), ref), f"{name}: integer tensors differ"
        return
    err = (ours.float() - ref.float()).abs().max().item()
    scale = ref.float().abs().max().item()
    assert err <= REL_TOL * scale, f"{name}: max|diff| {err:.3g} > {REL_TOL} * max|ref| {scale:.3g}"


def write_official(tmp: Path, name: str, weights: str) -> tuple[Path, Path]:
    """The fixture as a user would have it: an official-format ``.pt`` state dict and the YAML config."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(ATOKEN / weights).items()}
    ckpt, cfg = tmp / f"{name}.pt", tmp / f"{name}.yaml"
    torch.save(state, ckpt)
    cfg.write_text(yaml.safe_dump(meta(name)["config_used"]))
    return ckpt, cfg


def media(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 255 * 2 - 1  # the official float input, (u8 / 255) * 2 - 1


def meta(name: str) -> dict:
    return json.loads((ATOKEN / f"{name}.json").read_text())


def tokenizer_io(name: str) -> dict[str, torch.Tensor]:
    """The fixture's tensors plus those it shares with another fixture (sod: inputs, encoder outputs)."""
    io = dict(load_file(ATOKEN / meta(name)["files"]["io"]))
    for key, shared in meta(name).items():
        if key.startswith("shared_with_"):
            other = load_file(ATOKEN / meta(key.removeprefix("shared_with_"))["files"]["io"])
            io.update({t: other[t] for t in shared["tensors"]})
    return io


@pytest.fixture(scope="module", params=["atoken_soc", "atoken_sod"])
def converted(request, tmp_path_factory) -> tuple[str, VisualTokenizer]:
    tmp = tmp_path_factory.mktemp(request.param)
    ckpt, cfg = write_official(tmp, request.param, meta(request.param)["weights"]["file"])
    out = convert_atoken(ckpt, cfg, tmp / "avtok")
    return request.param, VisualTokenizer.from_pretrained(out)


@torch.no_grad()
def test_tokenizer_matches_official(converted) -> None:
    name, model = converted
    io = tokenizer_io(name)
    inputs = [media(io["image_u8"]), media(io["video_u8"])]  # batch 0 = image, batch 1 = video
    packed = model.patchify(inputs)  # centre crop, [-1, 1], 4-frame padding
    assert_close("input_feats", packed.features, io["input_feats"])
    coords = torch.cat([packed.sample_ids[:, None], model.model_coords(packed.coords)], dim=1)
    assert_close("input_coords", coords, io["input_coords"])  # (batch, t, row, col, z)

    out = model.encode(inputs, sample=True, noise=io["posterior_noise"])
    assert_close("enc_moments", torch.cat([out.mean, out.logvar], dim=1), io["enc_moments"])
    assert_close("x_no_proj", out.hidden, io["x_no_proj"])
    assert_close("image_feat", out.semantic, io["image_feat"])
    assert_close("decoder_input", out.latents, io["decoder_input"])
    if "fsq_indices" in io:
        assert_close("fsq_input", out.mean, io["fsq_input"])
        assert_close("fsq_indices", out.indices, io["fsq_indices"])
        assert_close("fsq_codes", out.latents, io["fsq_codes"])
        out.latents = None  # decode from the indices alone
    assert_close("rec_feats", model.decode_patches(out), io["rec_feats"])
    image, video = model.decode(out)
    for key, rec in (("rec_image", image[None]), ("rec_video", video)):
        if key in io:  # (T, H, W, 3) → the official (T, 3, H, W); sod stores no re-layout
            assert_close(key, rec.permute(0, 3, 1, 2), io[key])


@torch.no_grad()
def test_decoder_alone_from_fixture_latents(converted) -> None:
    """The decoder on the stored decoder input (isolates it from the encoder)."""
    name, model = converted
    io = tokenizer_io(name)
    out = model.encode([media(io["image_u8"]), media(io["video_u8"])])
    out.latents, out.indices = io["decoder_input"], None
    assert_close("rec_feats", model.decode_patches(out), io["rec_feats"])


@torch.no_grad()
def test_gaussian_decoder_matches_official(tmp_path) -> None:
    ckpt, cfg = write_official(tmp_path, "atoken_gs", meta("atoken_gs")["weights"]["file"])
    model = GaussianDecoder.from_pretrained(convert_atoken(ckpt, cfg, tmp_path / "avtok"))
    io = load_file(ATOKEN / "atoken_gs.io.safetensors")
    g = model(io["input_coords"], io["input_feats"])
    assert_close("out_feats", g.out_feats, io["out_feats"])
    assert_close("gaussian_batch_sizes", g.batch_sizes, io["gaussian_batch_sizes"])
    for key in (
        "xyz_raw",
        "features_dc",
        "scaling_raw",
        "rotation_raw",
        "opacity_raw",
        "xyz",
        "scaling",
        "rotation",
        "opacity",
    ):
        assert_close(f"gaussian_{key}", getattr(g, key), io[f"gaussian_{key}"])


runner = CliRunner()


@pytest.fixture(scope="module")
def sod_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sod")
    return write_official(tmp, "atoken_sod", meta("atoken_sod")["weights"]["file"])


def test_cli_convert_then_reconstruct_discrete(sod_files, tmp_path) -> None:
    ckpt, cfg = sod_files
    model_dir = tmp_path / "sod"
    result = runner.invoke(app, ["convert", str(ckpt), "--from", "atoken", "--config", str(cfg),
                                 "--out", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert "VisualTokenizer" in result.output
    src, out, idx = sample_path("concert"), tmp_path / "rec.mp4", tmp_path / "idx.safetensors"
    args = ["reconstruct", str(src), "-o", str(out), "--model", str(model_dir), "--start", "10",
            "--duration", "0.5", "--size", "0", "--discrete", "--indices", str(idx)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = probe(out)
    ref = read_clip(src, start=10, duration=0.5)
    t, h, w = ref.num_frames // 4 * 4, ref.height // 16 * 16, ref.width // 16 * 16  # official crop
    assert (info.width, info.height) == (w, h)
    indices = load_file(str(idx))["indices"]
    groups = meta("atoken_sod")["config_used"]["model"]["model_cfg"]["arch_cfg"]["quantizer_num_codebooks"]
    assert indices.shape == (t // 4 * (h // 16) * (w // 16), groups) and indices.dtype == torch.int32
    assert "psnr" in result.output


@torch.no_grad()
def test_api_any_size_continuous_and_discrete(sod_files, tmp_path) -> None:
    ckpt, cfg = sod_files
    model = VisualTokenizer.from_pretrained(convert_atoken(ckpt, cfg, tmp_path / "m"))
    clip = read_clip(sample_path("bigbuckbunny"), start=2.0, duration=6 / 25, size=(57, 83))
    image, video = clip.video_float()[0], clip.video_float()  # odd sizes: cropped to 48x80
    out = model.encode([image, video])
    assert out.semantic.shape == (2, model.config.encoder.dim)  # image_feat, L2-normalised
    assert torch.allclose(out.semantic.norm(dim=-1), torch.ones(2), atol=1e-5)
    rec_codes = model.decode(out)
    out.latents = None  # indices alone
    rec_idx = model.decode(out)
    assert rec_idx[0].shape == (48, 80, 3) and rec_idx[1].shape == (4, 48, 80, 3)
    for a, b in zip(rec_codes, rec_idx, strict=True):
        assert torch.equal(a, b)
    # continuous path of the same weights: the posterior mean by default, a sample on request
    model.latent_head.fsq = None
    mean = model.encode(image)
    assert mean.indices is None and torch.equal(mean.latents, mean.mean)
    torch.manual_seed(0)
    sample = model.encode(image, sample=True)
    assert not torch.allclose(sample.latents, mean.latents)


def test_bad_inputs_fail_with_one_clear_line(sod_files, tmp_path) -> None:
    ckpt, cfg = sod_files
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_state_dict(truncated)
    args = ["convert", str(truncated), "--config", str(cfg), "--out", str(tmp_path / "x")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "truncated" in result.output

    evil = tmp_path / "objects.pt"
    torch.save({"w": torch.zeros(1), "fn": print}, evil)  # a pickled function: never unpickled
    with pytest.raises(ValueError, match="weights_only"):
        read_state_dict(evil)

    gs_ckpt, gs_cfg = write_official(tmp_path, "atoken_gs", meta("atoken_gs")["weights"]["file"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \[blocks\.0"):
        convert_atoken(gs_ckpt, cfg, tmp_path / "y")  # another architecture's weights
    with pytest.raises(ValueError, match="unknown key"):
        convert_atoken(ckpt, gs_cfg, tmp_path / "y")

    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(cfg.read_text().replace("decoder_mlp_channels: 128", "decoder_mlp_channels: 256"))
    with pytest.raises(ValueError, match="config does not match the weights.*mlp"):
        convert_atoken(ckpt, bigger, tmp_path / "z")

    state = {k: v.float() for k, v in load_file(ATOKEN / meta("atoken_sod")["weights"]["file"]).items()}
    del state["proj.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing 1 tensor.*latent_head\.proj\.weight"):
        convert_atoken(tmp_path / "partial.pt", cfg, tmp_path / "w")

    other = tmp_path / "swin.yaml"
    other.write_text(cfg.read_text().replace("encoder_attn_mode: full", "encoder_attn_mode: swin"))
    with pytest.raises(ValueError, match="encoder_attn_mode='swin' is not supported"):
        convert_atoken(ckpt, other, tmp_path / "v")


@pytest.mark.slow
def test_finetune_from_converted_keeps_semantic_head(tmp_path) -> None:
    """``train --init``: a few steps on real frames lower the reconstruction error of the converted model
    while its semantic feature stays close to the frozen initial model's (distillation)."""
    ckpt, cfg = write_official(tmp_path, "atoken_soc", meta("atoken_soc")["weights"]["file"])
    init = convert_atoken(ckpt, cfg, tmp_path / "init")
    run = tmp_path / "run"
    args = ["train", "--init", str(init), "--data", "sample:concert", "--schedule", "plain",
            "--max-steps", "6", "--batch-size", "4", "--lr", "2e-3", "--no-perceptual", "--no-report",
            "--holdout-seconds", "2", "--eval-every", "100", "--eval-windows", "2",
            "--checkpoint-dir", str(run)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    before, after = VisualTokenizer.from_pretrained(init), VisualTokenizer.from_pretrained(run / "final")
    clip = read_clip(sample_path("concert"), start=30.0, duration=8 / 24, size=(64, 64))  # unseen frames
    frames = list(clip.video_float())
    with torch.no_grad():
        err = {n: (torch.stack(m(frames)[1]) - torch.stack(frames)).abs().mean().item()
               for n, m in (("before", before), ("after", after))}
        cos = torch.nn.functional.cosine_similarity(after.encode(frames).semantic,
                                                    before.encode(frames).semantic, dim=-1)
    print(f"L1 before {err['before']:.4f} after {err['after']:.4f}; cos(image_feat) min {cos.min():.4f}")
    assert err["after"] < 0.8 * err["before"]
    assert cos.min() > 0.9  # the stated bound: the semantic head is not destroyed
    with pytest.raises(ValueError, match="does not fit the model"):
        from avtok.tokenizer.visual.recipe import load_init

        load_init(before, {k: v[:1] for k, v in before.state_dict().items()}, source="x")


def test_cli_reconstruct_cache_tiles_option(tmp_path) -> None:
    """``reconstruct --cache-tiles N`` switches a converted model to KV-cached tiling (default: its own
    independent 16-frame chunks, the same as ``--cache-tiles 0``); a negative count is one clear line."""
    ckpt, cfg = write_official(tmp_path, "atoken_soc", meta("atoken_soc")["weights"]["file"])
    model_dir = convert_atoken(ckpt, cfg, tmp_path / "soc")
    src = sample_path("concert")

    def psnr_row(*extra: str) -> str:
        args = ["reconstruct", str(src), "-o", str(tmp_path / "rec.mp4"), "--model", str(model_dir),
                "--start", "10", "--duration", "1.5", "--size", "0", *extra]  # 36 frames: 3 chunks
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return next(line for line in result.output.splitlines() if "atoken-visual" in line)

    default = psnr_row()
    assert psnr_row("--cache-tiles", "0") == default
    assert psnr_row("--cache-tiles", "1") != default  # chunks 2-3 attend to the cache
    bad = runner.invoke(app, ["reconstruct", str(src), "--model", str(model_dir), "--cache-tiles", "-1"])
    assert bad.exit_code != 0 and "--cache-tiles -1" in bad.output and "Traceback" not in bad.output
