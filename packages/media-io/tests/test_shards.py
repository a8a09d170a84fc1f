"""Pre-extracted window shards: avtok-media-io shard -> WindowDataset gives the windows of the raw media."""

import json
import shutil
import warnings

import pytest
import torch
from typer.testing import CliRunner

from avtok.media_io import MediaError, WindowConfig, WindowDataset, sample_path, write_shards
from avtok.media_io.cli import app
from avtok.media_io.spectral import MelConfig

CFG = WindowConfig(
    window_frames=8,
    fps=8.0,
    size=(32, 32),
    sample_rate=8000,
    channels=1,
    mel=MelConfig(sample_rate=8000, f_max=4000.0, n_fft=256, hop_length=64, win_length=256),
    holdout_seconds=2.0,
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, short_mp4):
    root = tmp_path_factory.mktemp("shardsrc")
    shutil.copy(short_mp4, root / "a.mp4")
    shutil.copy(sample_path("bigbuckbunny"), root / "bunny.mp4")
    (root / "m.jsonl").write_text(
        json.dumps({"path": "a.mp4", "caption": "band", "label": "music"})
        + "\n"
        + json.dumps({"path": "bunny.mp4", "caption": "rabbit", "label": "cartoon"})
        + "\n"
    )
    return root / "m.jsonl"


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, manifest):
    out = tmp_path_factory.mktemp("shards")
    write_shards(manifest, out, CFG, shard_size=3, processes=2, progress=False)
    return out


def _by_key(samples):
    return {(s.source.rsplit("/", 1)[-1], round(s.start, 4)): s for s in samples}


def test_shards_round_trip_the_raw_windows(manifest, shard_dir):
    index = json.loads((shard_dir / "index.json").read_text())
    assert sum(s["count"] for s in index["shards"] if s["split"] == "train") == 4 + 3
    assert sum(s["count"] for s in index["shards"] if s["split"] == "heldout") == 2 + 2
    for split in ("train", "heldout"):
        raw = _by_key(WindowDataset(manifest, config=CFG, split=split).iter_worker(0, 1))
        shards = WindowDataset(shard_dir, config=CFG, split=split)
        got = _by_key(shards.iter_worker(0, 1))
        assert got.keys() == raw.keys()
        for key, sample in got.items():
            assert torch.equal(sample.video, raw[key].video) and torch.equal(sample.audio, raw[key].audio)
            assert torch.equal(sample.mel, raw[key].mel) and sample.caption == raw[key].caption
            assert shards.labels[sample.label] == raw[key].caption.replace("band", "music").replace(
                "rabbit", "cartoon"
            )


def test_shard_streams_are_disjoint_and_resumable(shard_dir):
    ds = WindowDataset(shard_dir, config=CFG, seed=5, buffer_size=3, chunk_windows=2)
    parts = [[(s.source, s.start) for s in ds.iter_worker(g, 3)] for g in range(3)]
    flat = [k for p in parts for k in p]
    assert len(flat) == len(set(flat)) == ds.num_windows == 7
    rest = [(s.source, s.start) for s in ds.iter_worker(1, 3, start=1)]
    assert rest == parts[1][1:]


def test_shards_refuse_other_window_settings(shard_dir):
    with pytest.raises(MediaError, match="other window settings"):
        WindowDataset(shard_dir, window_frames=8, fps=8.0, size=(64, 64), sample_rate=8000)


def test_shard_command(manifest, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "shard",
            "--data",
            str(manifest),
            "--out",
            str(tmp_path / "o"),
            "--fps",
            "8",
            "--size",
            "32",
            "--sample-rate",
            "8000",
            "--window-seconds",
            "1",
            "--processes",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = WindowDataset(tmp_path / "o", window_frames=8, fps=8.0, size=32, sample_rate=8000)
    assert ds.num_windows == 6 + 5
