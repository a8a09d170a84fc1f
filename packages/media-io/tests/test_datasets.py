"""WindowDataset on real media: (rank, worker) disjointness (also under torchrun), exact resume,
skip-and-count, messy files."""

import json
import os
import shutil
import socket
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch

from avtok.media_io import (
    AVClip,
    MediaError,
    WindowDataset,
    probe,
    read_clip,
    sample_path,
    write_clip,
)

WINDOW = dict(window_frames=8, fps=8.0, size=(32, 32), sample_rate=8000, channels=1)
# DataLoader workers start from a clean forkserver: forked from an xdist worker that had run other tests
# (threads alive), both workers deadlocked at start in CI (twice, in test_exact_resume_of_the_data_stream)
FORKSERVER = "forkserver"
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory, short_mp4):
    """Real clips: 6 s + 4 s concert cuts and the 5.3 s bigbuckbunny = 15 one-second windows."""
    root = tmp_path_factory.mktemp("good")
    shutil.copy(short_mp4, root / "a.mp4")
    clip = read_clip(
        sample_path("concert"), start=40.0, duration=4.0, size=(48, 64), sample_rate=16000, channels=2
    )
    (root / "sub").mkdir()
    write_clip(root / "sub" / "b.mp4", clip)
    shutil.copy(sample_path("bigbuckbunny"), root / "bunny.mp4")
    return root


@pytest.fixture(scope="module")
def messy_dir(tmp_path_factory, good_dir, short_mp4):
    """The good clips plus an empty file, a text file named .mp4, a truncated mp4 and a silent clip."""
    root = tmp_path_factory.mktemp("messy")
    shutil.copytree(good_dir, root, dirs_exist_ok=True)
    (root / "empty.mp4").touch()
    (root / "notes.mp4").write_text("this is not a video\n" * 20)
    data = short_mp4.read_bytes()  # faststart: the header (6 s) survives, half of the media does not
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    shutil.copy(sample_path("carphone"), root / "silent.mp4")
    return root


def _keys(batch):
    pairs = zip(batch.source, batch.start, strict=True)
    return [(s.rsplit("/", 1)[-1], round(float(t), 4)) for s, t in pairs]


def _key(sample):
    return (sample.source.rsplit("/", 1)[-1], round(sample.start, 4))


def _dataset(source, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WindowDataset(source, **WINDOW, **kw)


def _all_windows(ds):
    out = []
    for i, item in enumerate(ds.plan.items):
        name = str(item.path).rsplit("/", 1)[-1]
        out += [
            (name, round(float(ds.plan.first[i]) + k * ds.cfg.stride_seconds, 4))
            for k in range(ds.plan.counts[i])
        ]
    return out


def test_ranks_and_workers_are_disjoint_and_cover_an_epoch(good_dir):
    seen = []
    for rank in range(2):
        ds = _dataset(good_dir, rank=rank, world_size=2, seed=3, buffer_size=4, chunk_windows=2)
        for batch in ds.loader(2, num_workers=2, multiprocessing_context=FORKSERVER):
            seen += _keys(batch)
            assert batch.video.shape[1:] == (8, 32, 32, 3) and batch.audio.shape[1:] == (1, 8000)
    full = _all_windows(ds)
    assert len(full) == 15 and Counter(seen) == Counter(full)  # each window exactly once
    assert ds.plan.counts.tolist() == [6, 5, 4] or sorted(ds.plan.counts.tolist()) == [4, 5, 6]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(data, out, *, seed: int) -> dict[int, list[tuple[str, float]]]:
    """One epoch under ``torchrun --nproc-per-node 2`` (gloo), 2 DataLoader workers per rank."""
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), str(HERE / "torchrun_windows.py"), "--data",
           str(data), "--out", str(out), "--window", json.dumps(WINDOW), "--seed", str(seed)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(2)}
    assert all(run["world_size"] == 2 for run in runs.values())
    return {r: [tuple(w) for w in run["windows"]] for r, run in runs.items()}


@pytest.mark.slow  # two torchrun launches: ~35 s on 2 shared cores
def test_torchrun_two_ranks_two_workers_see_every_window_once(good_dir, tmp_path):
    """Issue 25 item 4 under a real launcher: rank and world size come from the gloo process group."""
    first = _torchrun(good_dir, tmp_path / "first", seed=3)
    seen = first[0] + first[1]
    full = _all_windows(_dataset(good_dir))
    assert Counter(seen) == Counter(full) and len(seen) == len(full) == 15  # each window exactly once
    assert first[0] and first[1] and not set(first[0]) & set(first[1])
    assert first == _torchrun(good_dir, tmp_path / "second", seed=3)  # the same per-rank order again
    for rank in range(2):  # what torchrun gave each rank = that rank's stream built explicitly
        ds = _dataset(good_dir, rank=rank, world_size=2, seed=3, buffer_size=4, chunk_windows=2)
        assert first[rank] == _loader_order(ds, rank, batch=2, workers=2)


def _loader_order(ds, rank: int, *, batch: int, workers: int) -> list[tuple[str, float]]:
    """The windows a DataLoader with ``workers`` processes yields on ``rank``, built in this process: each
    worker's stream in batches, taken round-robin (an exhausted worker is skipped). No worker processes are
    forked here: forking inside an xdist worker (execnet threads) deadlocked the children in CI."""
    total = ds.world_size * workers
    streams = [[_key(s) for s in ds.iter_worker(rank * workers + w, total)] for w in range(workers)]
    batches = [[st[i : i + batch] for i in range(0, len(st), batch)] for st in streams]
    return [k for i in range(max(map(len, batches))) for b in batches if i < len(b) for k in b[i]]


def test_order_is_deterministic_and_shuffled(good_dir):
    ds = _dataset(good_dir, seed=1, buffer_size=8)
    one = [_key(s) for s in ds.iter_worker(0, 1)]
    assert one == [_key(s) for s in _dataset(good_dir, seed=1, buffer_size=8).iter_worker(0, 1)]
    assert one != [_key(s) for s in _dataset(good_dir, seed=2, buffer_size=8).iter_worker(0, 1)]
    assert one != sorted(one) and sorted(one) == sorted(_all_windows(ds))
    assert [_key(s) for s in ds.iter_worker(0, 1, epoch=1)] != one  # another epoch, another order


def test_window_content_matches_a_direct_read(good_dir):
    ds = _dataset(good_dir, shuffle=False, chunk_windows=4)
    sample = list(ds.iter_worker(0, 1))[5]
    direct = read_clip(
        sample.source,
        start=sample.start,
        duration=1.0,
        fps=8.0,
        size=32,
        resize_mode="crop",
        sample_rate=8000,
        channels=1,
    )
    assert torch.equal(sample.video, direct.video)
    assert (sample.audio - direct.audio).abs().max() < 1e-4  # one read vs a seek: same samples


def test_exact_resume_of_the_data_stream(good_dir):
    def run(stop=None, state=None):
        ds = _dataset(good_dir, seed=7, buffer_size=5, chunk_windows=3, repeat=True)
        loader = ds.loader(2, num_workers=2, multiprocessing_context=FORKSERVER)
        if state is not None:
            loader.load_state_dict(state)
        keys = []
        for i, batch in enumerate(loader):
            keys.append(
                _keys(batch)
            )
            if i + 1 == stop:
                return keys, loader.state_dict()
        raise AssertionError("repeat=True never ends")

    full, _ = run(stop=12)  # 24 windows: past the end of epoch 0 (15 windows)
    first, state = run(stop=4)
    rest, _ = run(stop=8, state=state)
    assert first + rest == full  # same order, nothing repeated, nothing skipped
    assert set(state["positions"]) == {"0", "1"} and state["readers"] == 2
    ds = _dataset(good_dir, seed=7, repeat=True)
    with pytest.raises(MediaError, match="same world size and num_workers"):
        ds.loader(2, num_workers=3).load_state_dict(state)


def test_bad_files_are_skipped_and_counted(messy_dir):
    with pytest.warns(UserWarning, match="skipped 3 file"):
        ds = WindowDataset(messy_dir, **WINDOW, seed=0)
    reasons = {k.rsplit("/", 1)[-1]: v for k, v in ds.stats.skipped.items()}
    assert set(reasons) == {"empty.mp4", "notes.mp4", "silent.mp4"}
    assert (
        "empty" in reasons["empty.mp4"]
        and "not a" in reasons["notes.mp4"]
        and "no audio" in reasons["silent.mp4"]
    )
    assert ds.stats.files_found == 7 and ds.stats.files_used == 4 and ds.num_windows == 15 + 6
    # the counts travel from the worker processes with the batches
    loader = ds.loader(4, num_workers=2, multiprocessing_context=FORKSERVER)
    keys = [k for b in loader for k in zip(b.source, b.start.tolist(), strict=True)]
    stats = loader.stats()
    assert stats.truncated_files == 1 and stats.files_failed == 1
    assert stats.windows_failed >= 2 and stats.windows_yielded + stats.windows_failed == ds.num_windows
    assert len(keys) == stats.windows_yielded and stats.metrics()["files_skipped"] == 3
    alone = _dataset(messy_dir / "truncated.mp4")
    with pytest.warns(
        UserWarning, match=r"truncated: the video ends at [0-9.]+ s but its header says 6\.000 s"
    ):
        assert 1 <= len(list(alone.iter_worker(0, 1))) <= 5


def test_zero_usable_windows_is_an_error_naming_the_files(messy_dir, tmp_path):
    for name in ("empty.mp4", "notes.mp4", "silent.mp4"):
        shutil.copy(messy_dir / name, tmp_path / name)
    with pytest.raises(MediaError, match="no usable train windows") as err:
        _dataset(tmp_path)
    assert all(n in str(err.value) for n in ("empty.mp4", "notes.mp4", "silent.mp4"))
    with pytest.raises(MediaError, match="not found"):
        _dataset(tmp_path / "missing")


@pytest.fixture(scope="module")
def short_audio_mp4(tmp_path_factory):
    """5 s of the concert whose audio track ends 0.75 s before its video (re-encoded)."""
    clip = read_clip(
        sample_path("concert"), start=10.0, duration=5.0, size=(48, 48), sample_rate=16000, channels=1
    )
    cut = AVClip(
        video=clip.video, audio=clip.audio[:, : round(4.25 * 16000)], fps=clip.fps, sample_rate=16000
    )
    return write_clip(tmp_path_factory.mktemp("short_audio") / "short_audio.mp4", cut)


def test_audio_shorter_than_video_uses_the_common_span(short_audio_mp4, caplog):
    info = probe(short_audio_mp4)
    assert info.video_duration - info.audio_duration > 0.6
    with caplog.at_level("INFO", logger="avtok.media_io"):
        whole = read_clip(short_audio_mp4, sample_rate=16000)  # used to raise "audio ends at ..."
    assert "common span" in caplog.text
    assert abs(whole.duration - info.audio_duration) < 2 / whole.fps and whole.audio.abs().max() > 0.01
    ds = _dataset(short_audio_mp4, stride_frames=4)  # 1 s windows every 0.5 s inside 4.25 s
    assert ds.stats.audio_trimmed_files == 1 and ds.num_windows == 7
    samples = list(ds.iter_worker(0, 1))
    assert len(samples) == 7 and all(s.audio[:, -800:].abs().max() > 1e-3 for s in samples)  # real audio


def test_truncated_whole_read_warns_with_both_times(messy_dir):
    with pytest.warns(UserWarning, match=r"video ends at [0-9.]+ s but its header says 6\.000 s"):
        clip = read_clip(messy_dir / "truncated.mp4")
    assert 1.0 < clip.duration < 5.0


def test_heldout_split_by_time_is_never_trained_on(good_dir):
    train = _dataset(good_dir, holdout_seconds=2.0, shuffle=False)
    held = _dataset(good_dir, holdout_seconds=2.0, split="heldout", shuffle=False)
    infos = {str(it.path).rsplit("/", 1)[-1]: probe(it.path) for it in held.plan.items}
    ends = {n: min(i.video_duration, i.audio_duration or 1e9) for n, i in infos.items()}  # the common span
    tk, hk = [_key(s) for s in train.iter_worker(0, 1)], [_key(s) for s in held.iter_worker(0, 1)]
    assert not set(tk) & set(hk) and len(hk) == 2 * 3
    assert all(t + 1.0 <= ends[n] - 2.0 + 1e-6 for n, t in tk)  # train windows end before the tail
    assert all(t >= ends[n] - 2.0 - 1e-6 for n, t in hk)
