"""Ovi's BigVGAN v1 vocoder against the official recording (fed the stored decoded mel)."""

from __future__ import annotations

import pytest
import torch

from avtok.generator.ovi.vocoder import (
    BigVGAN,
    BigVGANConfig,
    bigvgan_config_from_state_dict,
    kaiser_sinc_lowpass,
    load_bigvgan,
)


@pytest.fixture(scope="module")
def fx(ovi_fixture):
    return ovi_fixture("ovi_audio_vae")


def _config(meta) -> BigVGANConfig:
    h = meta["config_used"]["vocoder"]["config"]
    assert (h["resblock"], h["activation"], h["snake_logscale"]) == ("1", "snakebeta", True)
    return BigVGANConfig(
        num_mels=h["num_mels"],
        upsample_initial_channel=h["upsample_initial_channel"],
        upsample_rates=tuple(h["upsample_rates"]),
        upsample_kernel_sizes=tuple(h["upsample_kernel_sizes"]),
        resblock_kernel_sizes=tuple(h["resblock_kernel_sizes"]),
        resblock_dilation_sizes=tuple(tuple(d) for d in h["resblock_dilation_sizes"]),
    )


@pytest.fixture(scope="module")
def vocoder(fx):
    meta, _, state = fx
    return load_bigvgan(state, config=_config(meta), prefix="vocoder.")


def test_waveform_from_stored_mel(fx, vocoder, assert_close):
    _, io, _ = fx
    with torch.no_grad():
        wave = vocoder(io["mel_decoded"])
    assert wave.shape[-1] == io["mel_decoded"].shape[-1] * vocoder.cfg.hop_length
    assert_close(wave, io["waveform_decoded"])


def test_filters_and_config(fx, vocoder):
    meta, _, state = fx
    filters = [v for k, v in state.items() if k.endswith("filter")]
    assert len(filters) == 2 * (6 * len(vocoder.resblocks) + 1)
    ours = kaiser_sinc_lowpass()
    for f in filters:  # every stored low-pass is the one we design
        assert torch.allclose(ours, f, rtol=0, atol=1e-7)
    voc_state = {k[len("vocoder.") :]: v for k, v in state.items() if k.startswith("vocoder.")}
    assert bigvgan_config_from_state_dict(voc_state) == _config(meta)


def test_weight_norm_folds_g_v(fx, vocoder):
    _, _, state = fx
    g = state["vocoder.ups.0.0.parametrizations.weight.original0"]  # (in, 1, 1): ConvTranspose1d, dim 0
    v = state["vocoder.ups.0.0.parametrizations.weight.original1"]  # (in, out, k)
    expect = g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)
    assert torch.allclose(vocoder.ups[0][0].weight, expect, rtol=1e-6, atol=1e-7)


def test_official_file_layout(fx, tmp_path):
    meta, io, state = fx
    voc_state = {k[len("vocoder.") :]: v for k, v in state.items() if k.startswith("vocoder.")}
    torch.save({"generator": voc_state}, tmp_path / "best_netG.pt")
    model = load_bigvgan(tmp_path / "best_netG.pt")
    with torch.no_grad():
        assert torch.equal(
            model(io["mel_decoded"][..., :4]),
            load_bigvgan(state, prefix="vocoder.")(io["mel_decoded"][..., :4]),
        )
    torch.save(voc_state, tmp_path / "flat.pt")
    with pytest.raises(KeyError, match="no 'generator' entry"):
        load_bigvgan(tmp_path / "flat.pt")
    broken = dict(voc_state)
    broken.pop("conv_post.bias")
    with pytest.raises(ValueError, match=r"1 missing \['conv_post.bias'\]"):
        load_bigvgan(broken)
    # a folded export (plain `weight` keys) loads too
    folded = BigVGAN(_config(meta)).fold_weight_norm()
    assert isinstance(load_bigvgan(folded.state_dict()), BigVGAN)
