"""AV window datasets: 2 ranks x 2 workers sharding, shuffling, skipping bad files, the disk cache."""

import json
import shutil
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from avtok.media_io import (
    AVWindowDataset,
    CachedWindowDataset,
    MediaError,
    collate_clips,
    prepare_windows,
    read_clip,
    sample_path,
    write_clip,
)

WINDOW = dict(window_frames=8, fps=8.0, size=(32, 32), sample_rate=8000, channels=1)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory, short_mp4):
    """Real clips (6 s + 4 s + 5.3 s bigbuckbunny = 15 one-second windows) and five files to skip."""
    root = tmp_path_factory.mktemp("ds")
    shutil.copy(short_mp4, root / "a.mp4")
    clip = read_clip(
        sample_path("concert"), start=40.0, duration=4.0, size=(48, 64), sample_rate=16000, channels=2
    )
    (root / "sub").mkdir()
    write_clip(root / "sub" / "b.mp4", clip)
    shutil.copy(sample_path("bigbuckbunny"), root / "bunny.mp4")
    shutil.copy(sample_path("carphone"), root / "silent.mp4")  # no audio stream
    data = short_mp4.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "empty.mp4").touch()
    (root / "notes.mp4").write_text("this is not a video\n" * 20)
    short = read_clip(sample_path("concert"), start=30.0, duration=0.5, size=(32, 32), sample_rate=16000)
    write_clip(root / "short.mp4", short)
    return root


def _key(clip):
    return (clip.source.rsplit("/", 1)[-1], round(clip.start, 6))


def test_index_and_skip_report(media_dir):
    with pytest.warns(UserWarning, match="skipped 5 file") as record:
        ds = AVWindowDataset(media_dir, **WINDOW)
    assert len(record) == 1  # reported once
    assert ds.stats.files_found == 8 and ds.stats.files_used == 3 and len(ds.windows) == 15
    reasons = {k.rsplit("/", 1)[-1]: v for k, v in ds.stats.skipped.items()}
    assert set(reasons) == {"silent.mp4", "truncated.mp4", "empty.mp4", "notes.mp4", "short.mp4"}
    assert "no audio" in reasons["silent.mp4"] and "truncated" in reasons["truncated.mp4"]
    assert "empty" in reasons["empty.mp4"] and "not a" in reasons["notes.mp4"]
    assert "too short" in reasons["short.mp4"]
    with pytest.warns(UserWarning, match="skipped 4"):
        assert len(AVWindowDataset(media_dir, allow_silent=True, **WINDOW).windows) == 15 + 4  # carphone 4 s


def test_two_ranks_two_workers_cover_every_window_once(media_dir):
    seen = []
    for rank in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = AVWindowDataset(media_dir, rank=rank, world_size=2, seed=3, **WINDOW)
        ds.set_epoch(1)
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        got = [_key(c) for c in loader]
        assert all(c.video.shape == (8, 32, 32, 3) and c.audio.shape == (1, 8000) for c in ds)
        assert len(got) == len(ds)  # __len__ is the rank's share
        seen += got
    expected = {(ds.files[f].name, round(s, 6)) for f, s in ds.windows}
    assert len(seen) == len(expected) == 15 and set(seen) == expected


def test_epoch_shuffle_is_deterministic(media_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = AVWindowDataset(media_dir, seed=7, **WINDOW)
        b = AVWindowDataset(media_dir, seed=7, **WINDOW)
    a.set_epoch(0)
    b.set_epoch(0)
    assert a.order() == b.order()
    first = a.order()
    a.set_epoch(1)
    assert a.order() != first and sorted(a.order()) == list(range(15))
    assert [a.shard_indices(w, 2) for w in range(2)] == [a.order()[0::2], a.order()[1::2]]


def test_runtime_failures_are_counted_and_warned_once(media_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = AVWindowDataset(media_dir, check_tail=False, shuffle=False, **WINDOW)  # truncated file indexed
    with pytest.warns(UserWarning, match="truncated.mp4") as record:
        clips = list(ds)
    assert len([r for r in record if "truncated.mp4" in str(r.message)]) == 1
    assert ds.stats.failed_windows >= 2 and len(clips) == len(ds.windows) - ds.stats.failed_windows


def test_manifests_and_collate(media_dir, tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(f"path,label\n{media_dir / 'a.mp4'},x\n{media_dir / 'sub' / 'b.mp4'},y\n")
    ds = AVWindowDataset(csv_path, **WINDOW)
    assert len(ds.windows) == 10
    jsonl = media_dir / "list.jsonl"
    jsonl.write_text(json.dumps({"path": "a.mp4"}) + "\n" + json.dumps({"path": "sub/b.mp4"}) + "\n")
    assert AVWindowDataset(jsonl, **WINDOW).windows == ds.windows
    jsonl.unlink()
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_clips)))
    assert batch["video"].shape == (4, 8, 32, 32, 3) and batch["video"].dtype == torch.uint8
    assert batch["audio"].shape == (4, 1, 8000) and batch["start"].shape == (4,)
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.mp4\n")
    with pytest.raises(MediaError, match="no 'path' column"):
        AVWindowDataset(bad, **WINDOW)
    with pytest.raises(MediaError, match="not found"):
        AVWindowDataset(tmp_path / "nothing", **WINDOW)


def test_prepare_and_cached_dataset(media_dir, tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(f"path\n{media_dir / 'a.mp4'}\n{media_dir / 'sub' / 'b.mp4'}\n")
    index = prepare_windows(csv_path, tmp_path / "cache", shard_size=4, **WINDOW)
    shards = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert shards == [
        "index.json",
        "shard-00000.safetensors",
        "shard-00001.safetensors",
        "shard-00002.safetensors",
    ]
    cached = CachedWindowDataset(index.parent)
    live = AVWindowDataset(csv_path, shuffle=False, **WINDOW)
    assert len(cached) == len(live.windows) == 10
    for i in (0, 3, 4, 9, -1):
        want = live.read_window(i % 10)
        got = cached[i]
        assert torch.equal(got.video, want.video) and torch.equal(got.audio, want.audio)
        assert got.start == want.start and got.source == want.source and got.fps == 8.0
    with pytest.raises(IndexError):
        cached[10]
    with pytest.raises(MediaError, match="run prepare_windows"):
        CachedWindowDataset(tmp_path)
