"""Ovi's Wan2.2 video VAE (diffusers AutoencoderKLWan + Wan2.2 key renaming) against the official recording."""

from __future__ import annotations

import pytest
import torch

from avtok.generator.ovi.video_vae import (
    WAN22_LATENT_MEAN,
    WAN22_LATENT_STD,
    WanVAEConfig,
    frames_to_uint8,
    load_wan_vae,
    wan22_to_diffusers_keys,
    wan_vae_config_from_state_dict,
)


@pytest.fixture(scope="module")
def fx(ovi_fixture):
    return ovi_fixture("ovi_video_vae")


def _config(meta) -> WanVAEConfig:
    kw = meta["diffusers_AutoencoderKLWan"]["AutoencoderKLWan_kwargs"]
    return WanVAEConfig(
        base_dim=kw["base_dim"],
        decoder_base_dim=kw["decoder_base_dim"],
        z_dim=kw["z_dim"],
        dim_mult=tuple(kw["dim_mult"]),
        num_res_blocks=kw["num_res_blocks"],
        temporal_downsample=tuple(kw["temperal_downsample"]),
    )


@pytest.fixture(scope="module")
def vae(fx):
    meta, _, state = fx
    cfg = _config(meta)
    assert cfg.diffusers_kwargs() == meta["diffusers_AutoencoderKLWan"]["AutoencoderKLWan_kwargs"]
    return load_wan_vae(state, config=cfg)


def test_latent_constants(fx, vae):
    _, io, _ = fx
    assert torch.equal(torch.tensor(WAN22_LATENT_MEAN), io["latents_mean"])
    assert torch.equal(torch.tensor(WAN22_LATENT_STD), io["latents_std"])
    assert torch.equal(vae.latents_inv_std, io["latents_inv_std"])  # the float32 reciprocal, bit for bit


def test_input_conversion(fx):
    _, io, _ = fx
    video = (io["video_u8"].float() / 255 * 2 - 1).permute(3, 0, 1, 2)[None]  # (1, 3, T, H, W)
    assert torch.equal(video, io["video_input"])


def test_encode(fx, vae, assert_close):
    _, io, _ = fx
    moments = []
    hook = vae.model.quant_conv.register_forward_hook(lambda m, i, o: moments.append(o))
    try:
        with torch.no_grad():
            mu, _ = vae.encode_posterior(io["video_input"])
            latent = vae.encode(io["video_input"])
            image_latent = vae.encode(io["video_input"][:, :, :1])
    finally:
        hook.remove()
    assert_close(moments[0], io["enc_moments"])
    assert_close(mu, io["latent_mu"])
    assert_close(latent, io["latent"])
    assert_close(image_latent, io["image_latent"])


def test_decode_from_stored_latent(fx, vae, assert_close):
    _, io, _ = fx
    with torch.no_grad():
        raw = vae.decode(io["latent"], clamp=False)
        decoded = vae.decode(io["latent"])
    assert raw.shape[2] == 1 + 4 * (io["latent"].shape[2] - 1)
    assert_close(raw, io["decoded_raw"])
    assert_close(decoded, io["decoded"])
    assert torch.equal(decoded, raw.clamp(-1, 1))
    u8 = frames_to_uint8(decoded[0])
    assert u8.dtype == torch.uint8 and u8.shape == io["video_u8"].shape
    assert torch.equal(u8, ((io["decoded"][0] + 1) / 2 * 255).to(torch.uint8).permute(1, 2, 3, 0))


def test_key_renaming_covers_the_wan22_layout(fx, vae):
    meta, _, state = fx
    renamed = wan22_to_diffusers_keys(state)
    assert len(renamed) == len(state) == meta["weights"]["num_tensors"]
    assert set(renamed) == set(vae.model.state_dict())
    assert renamed["quant_conv.weight"] is state["conv1.weight"]
    assert (
        renamed["encoder.down_blocks.1.downsampler.time_conv.weight"]
        is state["encoder.downsamples.1.downsamples.2.time_conv.weight"]
    )
    assert (
        renamed["decoder.up_blocks.0.resnets.2.norm2.gamma"]
        is state["decoder.upsamples.0.upsamples.2.residual.3.gamma"]
    )
    assert wan_vae_config_from_state_dict(state) == _config(meta)
    assert wan_vae_config_from_state_dict(renamed) == _config(meta)


def test_loader_file_and_errors(fx, tmp_path):
    meta, io, state = fx
    torch.save({k: v.half() for k, v in state.items()}, tmp_path / "Wan2.2_VAE.pth")
    vae = load_wan_vae(tmp_path / "Wan2.2_VAE.pth")
    assert vae.cfg == _config(meta)
    broken = {k: v for k, v in state.items() if k != "encoder.head.0.gamma"}
    with pytest.raises(ValueError, match=r"1 missing \['encoder.norm_out.gamma'\]"):
        load_wan_vae(broken, config=_config(meta))
    with pytest.raises(ValueError, match="multiples of 16"):
        vae.encode(io["video_input"][..., :24])
