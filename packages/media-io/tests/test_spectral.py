"""log-mel against an independent numpy/scipy reference (HiFi-GAN's recipe), and the mel normaliser."""

import json

import numpy as np
import pytest
import torch
from scipy.signal import get_window

from avtok.media_io import (
    MediaError,
    MelConfig,
    MelNormalizer,
    log_mel,
    mel_basis,
    read_audio,
    sample_path,
    stft,
)


def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * 200.0 / 3)


def slaney_filterbank(sr, n_fft, n_mels, fmin, fmax):
    """librosa.filters.mel(htk=False, norm='slaney'), written out independently."""
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]  # (n_mels, n_freqs), area-normalised


def reference_log_mel(wave, cfg):
    """HiFi-GAN meldataset.mel_spectrogram in numpy: reflect pad (n_fft-hop)/2, center=False."""
    pad = (cfg.n_fft - cfg.hop_length) // 2
    x = np.pad(wave.astype(np.float64), (pad, pad), mode="reflect")
    n_frames = 1 + (len(x) - cfg.n_fft) // cfg.hop_length
    frames = np.stack([x[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft] for i in range(n_frames)])
    win = get_window("hann", cfg.win_length, fftbins=True)
    left = (cfg.n_fft - cfg.win_length) // 2
    win = np.pad(win, (left, cfg.n_fft - cfg.win_length - left))  # centred in the n_fft frame, as torch.stft
    spec = np.fft.rfft(frames * win, axis=1).T  # (F, frames)
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    mel = slaney_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max) @ mag
    return np.log(np.maximum(mel, cfg.clamp_min))


@pytest.fixture(scope="module")
def song():
    wave, sr = read_audio(sample_path("song"), start=4.0, duration=1.5, sample_rate=22050, channels=1)
    return wave[0]


def test_filterbank_matches_independent_slaney():
    cfg = MelConfig()
    ref = slaney_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    assert np.allclose(mel_basis(cfg).numpy(), ref, atol=1e-7, rtol=1e-4)


def test_log_mel_matches_reference_on_real_audio(song):
    cfg = MelConfig()
    mel = log_mel(song.double(), cfg)
    assert mel.shape == (80, song.numel() // 256)
    ref = reference_log_mel(song.numpy(), cfg)
    assert np.abs(mel.numpy() - ref).max() < 1e-4  # torchaudio builds the filterbank in float32
    mel32 = log_mel(song, cfg)  # float32 path
    assert np.abs(mel32.numpy() - ref).max() < 2e-3


def test_other_config_and_batch_dims(song):
    cfg = MelConfig(
        sample_rate=16000, n_fft=512, hop_length=160, win_length=400, n_mels=64, f_min=50.0, f_max=7600.0
    )
    batch = torch.stack([song[:16000], song[16000:32000]]).reshape(2, 1, 16000)
    mel = log_mel(batch.double(), cfg)
    assert mel.shape == (2, 1, 64, 100)
    assert np.abs(mel[1, 0].numpy() - reference_log_mel(song[16000:32000].numpy(), cfg)).max() < 1e-4
    spec = stft(batch, cfg)
    assert spec.is_complex() and spec.shape == (2, 1, 257, 100)


def test_sine_peaks_in_the_right_bin():
    cfg = MelConfig()
    t = torch.arange(22050, dtype=torch.float64) / 22050
    spec = stft(0.5 * torch.sin(2 * np.pi * 1000.0 * t), cfg)
    assert spec.abs().mean(-1).argmax().item() == round(1000.0 * cfg.n_fft / cfg.sample_rate)


def test_errors():
    with pytest.raises(MediaError, match="float tensor"):
        log_mel(torch.zeros(1000, dtype=torch.int16))
    with pytest.raises(MediaError, match="too short"):
        log_mel(torch.zeros(100))
    with pytest.raises(MediaError, match="f_max"):
        MelConfig(f_max=20000.0)


def test_normalizer_round_trip_and_json(song):
    mels = torch.stack([log_mel(song[:11025]), log_mel(song[11025:22050])])  # (2, 80, 43)
    norm = MelNormalizer().fit(mels)
    x = norm.normalize(mels)
    assert x.min() == -1.0 and x.max() == 1.0
    assert torch.allclose(x.amin(dim=(0, 2)), torch.full((80,), -1.0))  # per-bin statistics
    assert torch.allclose(norm.denormalize(x), mels, atol=1e-4)
    restored = MelNormalizer.from_json_dict(json.dumps(norm.to_json_dict()))
    assert torch.allclose(restored.normalize(mels), x)
    again = MelNormalizer().load_state_dict(norm.state_dict())
    assert torch.equal(again.low, norm.low) and torch.equal(again.high, norm.high)
    inc = MelNormalizer().update(mels[0]).update(mels[1])
    assert torch.equal(inc.low, norm.low) and torch.equal(inc.high, norm.high)
    glob = MelNormalizer(per_bin=False).fit(mels)
    assert glob.low.shape == (1, 1) and glob.low.item() == pytest.approx(mels.min().item())
    with pytest.raises(MediaError, match="not fitted"):
        MelNormalizer().normalize(mels)


def test_log_mel_is_differentiable():
    # training losses backpropagate through log_mel (mel L1): check the gradient numerically
    cfg = MelConfig(sample_rate=8000, n_fft=32, hop_length=8, win_length=32, n_mels=6, f_max=4000.0)
    wave = torch.randn(1, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    assert torch.autograd.gradcheck(lambda w: log_mel(w, cfg), (wave.requires_grad_(),), eps=1e-6, atol=1e-4)
