import pytest
import torch
import torchaudio.functional as AF

from avtok.eval.audio_embedding import AisfxEmbedder, _load_state, aisfx_checkpoint_path, fad


class CachedAisfx(AisfxEmbedder):
    """Embeds each distinct waveform once (the reference set recurs in every FAD call below)."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[int, torch.Tensor] = {}

    def __call__(self, wave, sample_rate):
        key = hash((wave.contiguous().numpy().tobytes(), sample_rate))
        if key not in self.cache:
            self.cache[key] = super().__call__(wave, sample_rate)
        return self.cache[key]


@pytest.fixture(scope="module")
def embedder(aisfx_weights):
    return CachedAisfx()


@pytest.fixture(scope="module")
def segments(song):
    audio, sr = song
    return [audio[:, int(s * sr) : int((s + 3.0) * sr)] for s in (0.5, 4.0, 7.5, 11.0)], sr  # 4 x 3 s, 2 blocks each


def test_network_matches_the_aisfx_reference_implementation(embedder):
    cnn2d = pytest.importorskip("aisfx.models.cnn2d")  # the package's own model code
    ref = cnn2d.EmbeddingNet("max", 3, 1, 64)
    ref.load_state_dict(_load_state(aisfx_checkpoint_path()))
    ref.eval()
    x = torch.rand(2, 100, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(embedder.net(x), ref(x), atol=1e-5)


def test_input_pipeline_shapes_and_filterbank(embedder, segments):
    (wave, *_), sr = segments
    spec = embedder.spectrogram(wave, sr)
    assert spec.shape[1] == 96 and abs(spec.shape[0] - 3.0 * 44100 / 1024) <= 2
    assert 0.0 <= float(spec.min()) and float(spec.max()) < 1.5  # log10(1e4 S + 1) / training max
    assert torch.allclose(embedder.fb.sum(0), torch.ones(96), atol=1e-5)  # librosa norm=1: unit-L1 filters
    blocks = AisfxEmbedder.blocks(spec)
    assert blocks.shape == (1 + (spec.shape[0] - 100) // 50, 100, 96)
    assert AisfxEmbedder.blocks(spec[:40]).shape == (1, 100, 96)  # short input: zero-padded block


def test_fad_identical_is_zero_and_degraded_is_far(embedder, segments):
    waves, sr = segments
    assert fad(waves, waves, sample_rate=sr, embedder=embedder) == pytest.approx(0.0, abs=1e-3)
    muffled = [AF.lowpass_biquad(w, sr, 500.0) for w in waves]
    g = torch.Generator().manual_seed(0)
    noisy = [(w + 0.1 * torch.randn(w.shape, generator=g)).clamp(-1, 1) for w in waves]
    d_muffled = fad(muffled, waves, sample_rate=sr, embedder=embedder)
    d_noisy = fad(noisy, waves, sample_rate=sr, embedder=embedder)
    assert d_muffled > 1.0 and d_noisy > 1.0
    quieter = [0.5 * w for w in waves]  # aiSFX peak-normalises its input: a gain change is invisible
    assert fad(quieter, waves, sample_rate=sr, embedder=embedder) < 1e-3 * min(d_muffled, d_noisy)


def test_fad_needs_two_embeddings(embedder, segments):
    waves, sr = segments
    with pytest.raises(ValueError, match="generated audio embeddings: 1 samples"):
        fad([waves[0][:, : sr * 2]], waves, sample_rate=sr, embedder=embedder)
    with pytest.raises(ValueError, match="NaN"):
        embedder(torch.full((1, 1000), float("nan")), sr)
