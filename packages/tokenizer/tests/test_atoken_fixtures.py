"""Golden outputs of the official AToken code (../shared/fixtures/atoken), reproduced through the converter.

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
from avtok.tokenizer import GaussianDecoder, VisualTokenizer
from avtok.tokenizer.atoken_convert import convert_atoken
from safetensors.torch import load_file

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
