"""Ovi's audio path against the official recordings: 16 kHz mel front end and MMAudio VAE."""

from __future__ import annotations

import pytest
import torch

from avtok.generator.ovi.audio_vae import (
    AudioVAE,
    AudioVAEConfig,
    MPConv1d,
    audio_vae_config_from_state_dict,
    load_audio_vae,
    mp_normalize_weight,
)
from avtok.generator.ovi.mel import OVI_MEL, ovi_log_mel, ovi_mel_basis


@pytest.fixture(scope="module")
def fx(ovi_fixture):
    return ovi_fixture("ovi_audio_vae")


@pytest.fixture(scope="module")
def vae(fx):
    meta, _, state = fx
    used = meta["config_used"]["vae"]
    cfg = AudioVAEConfig(
        mel_bins=used["data_dim"],
        latent_dim=used["embed_dim"],
        hidden_dim=used["hidden_dim"],
        ch_mult=tuple(used["ch_mult"]),
        encoder_blocks=used["num_res_blocks"],
        decoder_blocks=used["decoder_num_res_blocks_per_level"],
        down_levels=tuple(used["down_layers"]),
        kernel_size=used["kernel_size"],
        clip_act=used["clip_act"],
    )
    return load_audio_vae(state, config=cfg, prefix="vae.")


def test_mel_front_end(fx, assert_close):
    meta, io, _ = fx
    conv = meta["config_used"]["mel_converter"]
    assert (OVI_MEL.sample_rate, OVI_MEL.n_fft, OVI_MEL.hop_length, OVI_MEL.n_mels) == (
        conv["sampling_rate"],
        conv["n_fft"],
        conv["hop_size"],
        conv["num_mels"],
    )
    assert_close(ovi_mel_basis(), io["mel_basis"])
    mel = ovi_log_mel(io["waveform"])
    assert mel.shape[-1] == io["waveform"].shape[-1] // OVI_MEL.hop_length
    assert_close(mel, io["mel"], atol=1e-3)  # float32 STFT rounding in the quietest bins (fixtures README)
    # the clamp matters: the input exceeds ±1
    assert io["waveform"].abs().max() > 1
    assert (ovi_log_mel(io["waveform"] * 1.5) - mel).abs().max() > 1e-2


def test_config_from_checkpoint_shapes(fx, vae):
    _, _, state = fx
    inferred = audio_vae_config_from_state_dict({k[4:]: v for k, v in state.items() if k.startswith("vae.")})
    assert inferred == vae.cfg


def test_vae_encode_decode_from_stored_mel(fx, vae, assert_close):
    _, io, _ = fx
    with torch.no_grad():
        assert_close(vae.normalize(io["mel"]), io["mel_normalized"])
        assert_close(vae.encode_moments(io["mel"]), io["enc_moments"])
        post = vae.posterior(io["mel"])
        assert_close(post.mean, io["posterior_mean"])
        assert_close(post.logvar, io["posterior_logvar"])
        assert_close(vae.encode(io["mel"])[0].T, io["dit_audio_latent"])
        assert_close(vae.decode(io["posterior_mean"]), io["mel_decoded"])


def test_odd_frame_count_drops_last_frame(vae):
    mel = torch.randn(1, vae.cfg.mel_bins, 9)
    with torch.no_grad():
        z = vae.encode(mel)
        assert z.shape == (1, vae.cfg.latent_dim, 4)
        assert vae.decode(z).shape == (1, vae.cfg.mel_bins, 8)  # 2L: the odd last mel frame is lost


def test_weight_norm_fold_matches_on_the_fly(fx):
    _, _, state = fx
    w = state["vae.encoder.conv_in.weight"]
    conv = MPConv1d(w.shape[1], w.shape[0], w.shape[2])
    conv.weight.data.copy_(w)
    x = torch.randn(2, w.shape[1], 7)
    live = conv(x)
    conv.fold_weight_norm()
    assert torch.equal(conv(x), live)
    # unit norm per output channel up to eps * sqrt(fan_in)
    folded = mp_normalize_weight(w)
    norms = folded.flatten(1).norm(dim=1)
    expect = w.flatten(1).norm(dim=1) / (w.flatten(1).norm(dim=1) + 1e-4 * w[0].numel() ** 0.5)
    assert torch.allclose(norms, expect, atol=1e-6)


def test_loader_errors_name_the_keys(fx, tmp_path):
    _, _, state = fx
    vae_state = {k[4:]: v for k, v in state.items() if k.startswith("vae.")}
    broken = dict(vae_state)
    broken.pop("decoder.learnable_gain")
    broken["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(
        ValueError, match=r"1 missing \['decoder.learnable_gain'\].*1 unknown \['encoder.extra.weight'\]"
    ):
        load_audio_vae(broken)
    torch.save(vae_state, tmp_path / "v1-16.pth")
    model = load_audio_vae(tmp_path / "v1-16.pth")  # the official file format, read with weights_only=True
    assert (
        isinstance(model, AudioVAE) and model.cfg.hidden_dim == vae_state["encoder.conv_in.weight"].shape[0]
    )
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_audio_vae(tmp_path / "missing.pth")
