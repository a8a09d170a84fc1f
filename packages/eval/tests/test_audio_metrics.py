import math

import pytest
import torch

from avtok.eval.audio_metrics import MRSTFTConfig, mel_l1, mrstft_distance, si_sdr


@pytest.fixture(scope="module")
def wave(song):
    audio, sr = song
    return audio[:, 5 * sr : 7 * sr].contiguous()  # (2, 44100): 2 s of the song


def test_si_sdr_is_scale_invariant_and_matches_closed_form(wave):
    s = wave - wave.mean(-1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    n = torch.randn(s.shape, generator=g)
    n = n - n.mean(-1, keepdim=True)
    n = n - (n * s).sum(-1, keepdim=True) / (s * s).sum(-1, keepdim=True) * s  # exactly orthogonal to s
    n = n / n.norm(dim=-1, keepdim=True) * s.norm(dim=-1, keepdim=True) * 10 ** (-20 / 20)  # 20 dB below
    for scale in (0.1, 1.0, 3.0):
        got = si_sdr(scale * (s + n), s)
        assert torch.allclose(got, torch.full_like(got, 20.0), atol=1e-4)
    assert (si_sdr(0.37 * s, s) > 80).all()


def test_si_sdr_of_silence_is_minus_inf(wave):
    assert torch.isneginf(si_sdr(torch.zeros_like(wave), wave)).all()


def test_si_sdr_against_a_silent_target_is_undefined(wave):
    silent = torch.zeros_like(wave)
    assert torch.isnan(si_sdr(silent, silent)).all() and torch.isnan(si_sdr(wave, silent)).all()


def test_mrstft_default_resolutions_and_closed_form(wave):
    cfg = MRSTFTConfig()
    assert cfg.resolutions == ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
    assert torch.allclose(mrstft_distance(wave, wave), torch.zeros(2, dtype=torch.float64))
    # pred = 2 x: spectral convergence is exactly 1 and every log-magnitude differs by log 2.
    got = mrstft_distance(2 * wave, wave)
    assert torch.allclose(got, torch.full_like(got, 1 + math.log(2)), atol=2e-3)
    noisy = wave + 0.05 * torch.randn(wave.shape, generator=torch.Generator().manual_seed(1))
    assert (mrstft_distance(noisy, wave) > mrstft_distance(wave + 0.005 * (noisy - wave), wave)).all()


def test_mel_l1_closed_form_and_resampling(wave):
    got = mel_l1(0.5 * wave, wave, sample_rate=22050)  # 80-mel log magnitudes differ by log 2
    assert torch.allclose(got, torch.full_like(got, math.log(2)), atol=0.03)
    assert torch.allclose(mel_l1(wave, wave, sample_rate=22050), torch.zeros(2, dtype=torch.float64))
    import torchaudio.functional as AF

    up = AF.resample(wave, 22050, 44100)
    assert torch.allclose(mel_l1(0.5 * up, up, sample_rate=44100), got, atol=0.03)


def test_audio_errors(wave):
    with pytest.raises(ValueError, match="shape"):
        si_sdr(wave[:, :100], wave)
    bad = wave.clone()
    bad[0, 3] = float("inf")
    with pytest.raises(ValueError, match="NaN/Inf"):
        mrstft_distance(bad, wave)
    with pytest.raises(ValueError, match="too short"):
        mrstft_distance(wave[:, :500], wave[:, :500])
