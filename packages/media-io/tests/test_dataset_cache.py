"""WindowDataset(cache_mb=): later epochs come from memory, the stream is unchanged, the budget holds."""

import itertools
import warnings

import pytest
import torch

from avtok.media_io import MediaError, WindowDataset, sample_path
from avtok.media_io.spectral import MelConfig
from avtok.media_io.windows import UnitReader

WINDOW = dict(window_frames=8, fps=8.0, size=(32, 32), sample_rate=8000, channels=1,
              mel=MelConfig(sample_rate=8000, n_fft=512, hop_length=128, win_length=512, n_mels=40,
                            f_max=4000.0))


def _stream(cache_mb: float, windows: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = WindowDataset(sample_path("concert"), split="all", seed=3, repeat=True, chunk_windows=4,
                           buffer_size=8, cache_mb=cache_mb, **WINDOW)
    return ds, list(itertools.islice(iter(ds), windows))


@pytest.fixture
def decodes(monkeypatch):
    """Count the unit reads that reach the decoder."""
    calls = []
    read = UnitReader.read
    monkeypatch.setattr(UnitReader, "read", lambda self, *a: calls.append(a) or read(self, *a))
    return calls


def test_cached_epochs_equal_decoded_ones_and_skip_decoding(decodes):
    plain, want = _stream(0, 2 * 60)  # the concert at 8 fps in 1-s windows: 60 per epoch, two epochs
    units = len(plain.plan.units)
    assert plain.num_windows == 60 and len(decodes) == 2 * units
    decodes.clear()
    cached, got = _stream(512, 2 * 60)
    assert len(decodes) == units  # the second epoch read nothing from the file
    for a, b in zip(want, got, strict=True):
        assert (a.source, a.start, a.position) == (b.source, b.start, b.position)
        assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio) and torch.equal(a.mel, b.mel)
    nbytes = sum(t.numel() * t.element_size() for s in got[:60] for t in (s.video, s.audio, s.mel))
    assert cached._cached_bytes == nbytes  # every window of the epoch, counted once


def test_a_budget_smaller_than_the_dataset_caches_part_and_streams_the_rest(decodes):
    _, want = _stream(0, 2 * 60)
    decodes.clear()
    budget_units = 5
    full, _ = _stream(512, 4)
    unit_bytes = full._cached_bytes / len(full._cache)
    decodes.clear()
    part, got = _stream(budget_units * unit_bytes / 2**20, 2 * 60)
    units = len(part.plan.units)
    assert len(part._cache) == budget_units and part._cached_bytes <= part.cache_bytes
    assert len(decodes) == 2 * units - budget_units
    assert [(s.start, s.position) for s in got] == [(s.start, s.position) for s in want]
    assert all(torch.equal(a.video, b.video) for a, b in zip(want, got, strict=True))


def test_a_negative_budget_is_refused():
    with pytest.raises(MediaError, match="cache_mb=-1"):
        WindowDataset(sample_path("concert"), cache_mb=-1, **WINDOW)
