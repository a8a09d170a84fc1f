"""parse_source: files, folders, manifests (CSV/JSONL/Parquet/txt), sample:, tar shards of raw media."""

import json
import shutil
import tarfile
import warnings

import polars as pl
import pytest
import torch

from avtok.media_io import MediaError, TarMember, WindowDataset, parse_source, probe, read_clip, sample_path

WINDOW = dict(window_frames=8, fps=8.0, size=(32, 32), sample_rate=8000, channels=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, short_mp4):
    root = tmp_path_factory.mktemp("src")
    shutil.copy(short_mp4, root / "a.mp4")
    shutil.copy(sample_path("bigbuckbunny"), root / "bunny.mp4")
    return root


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_manifest_columns_reach_the_windows(clips, tmp_path, suffix):
    rows = [
        {
            "path": str(clips / "a.mp4"),
            "start": 1.0,
            "end": 4.5,
            "caption": "a band",
            "label": "music",
            "split": "train",
        },
        {
            "path": "bunny.mp4",
            "start": None,
            "end": None,
            "caption": "a rabbit",
            "label": "cartoon",
            "split": "val",
        },
    ]
    manifest = tmp_path / f"m{suffix}"
    frame = pl.DataFrame(rows)
    {".csv": frame.write_csv, ".jsonl": frame.write_ndjson, ".parquet": frame.write_parquet}[suffix](manifest)
    shutil.copy(clips / "bunny.mp4", tmp_path / "bunny.mp4")  # relative paths resolve against the manifest
    source = parse_source(manifest)
    assert [it.caption for it in source.items] == ["a band", "a rabbit"] and source.items[1].heldout
    train = WindowDataset(manifest, **WINDOW, shuffle=False)
    got = [(s.start, s.caption, train.labels[s.label]) for s in train.iter_worker(0, 1)]
    assert got == [(1.0 + k, "a band", "music") for k in range(3)]  # [1, 4.5) holds three 1 s windows
    held = WindowDataset(manifest, **WINDOW, split="heldout", shuffle=False)
    assert {s.caption for s in held.iter_worker(0, 1)} == {"a rabbit"} and held.num_windows == 5


def test_specs_file_folder_sample_list(clips, tmp_path):
    assert len(parse_source(clips).items) == 2 and len(parse_source(clips / "a.mp4").items) == 1
    assert parse_source("sample:concert").items[0].path == sample_path("concert")
    listing = tmp_path / "files.txt"
    listing.write_text(f"{clips / 'a.mp4'}\n\n{clips / 'bunny.mp4'}\n")
    assert [it.path.name for it in parse_source([listing, "sample:bigbuckbunny"]).items] == [
        "a.mp4",
        "bunny.mp4",
        "bigbuckbunny.mp4",
    ]
    with pytest.raises(MediaError, match="not found"):
        parse_source(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.mp4\n")
    with pytest.raises(MediaError, match="no 'path' column"):
        parse_source(bad)


def test_raw_media_tar_shards_are_read_in_place(clips, tmp_path):
    for n in range(2):
        with tarfile.open(tmp_path / f"raw-{n:03d}.tar", "w") as tar:
            tar.add(clips / ("a.mp4" if n == 0 else "bunny.mp4"), arcname=f"clip{n}.mp4")
            meta = tmp_path / "meta.json"
            meta.write_text(json.dumps({"caption": f"clip {n}", "label": n}))
            tar.add(meta, arcname=f"clip{n}.json")
    source = parse_source(str(tmp_path / "raw-{000..001}.tar"))
    assert [it.caption for it in source.items] == ["clip 0", "clip 1"]
    member = source.items[0].path
    assert isinstance(member, TarMember) and probe(member).duration == pytest.approx(
        probe(clips / "a.mp4").duration
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_tar = WindowDataset(tmp_path, **WINDOW, shuffle=False)
    samples = list(from_tar.iter_worker(0, 1))
    assert len(samples) == 6 + 5 and samples[0].caption == "clip 0"
    direct = read_clip(
        clips / "a.mp4", start=2.0, duration=1.0, fps=8.0, size=32, resize_mode="crop", sample_rate=8000
    )
    assert (
        torch.equal(samples[2].video, direct.video) and (samples[2].audio - direct.audio).abs().max() < 1e-4
    )
