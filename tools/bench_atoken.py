"""Benchmark the released AToken architecture (the ``so400m`` preset = AToken So/C) on CPU.

1. Cost of one encode + decode round trip and its peak memory, for one 256×256 image and one 16×256×256
   clip (random weights: the architecture, not the checkpoint, sets the cost). Each case runs in a fresh
   process; peak memory = that process's peak RSS minus its RSS after building the model.
2. Scaling: time(64 frames) / time(16 frames) under the official chunking (independent 16-frame chunks,
   ``TilingConfig(16, cache_tiles=0)``, the converted model's default) and under avtok's KV-cached tiling
   (``cache_tiles=1``: each chunk also attends to the previous one). Linear is 4.0.

Run:  python tools/bench_atoken.py            (so400m: 27+27 blocks of width 1152 — minutes, ~4 GB)
      python tools/bench_atoken.py --quick    (the same layout with 2+2 blocks at 64×64 — seconds)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch

from avtok.tokenizer import TilingConfig, atoken_config, build_tokenizer, resolve_config

OFFICIAL = TilingConfig(tile_frames=16, cache_tiles=0)
CACHED = TilingConfig(tile_frames=16, cache_tiles=1)


def _config(quick: bool):
    if quick:
        return atoken_config(dim=1152, depth=2, heads=16, mlp_hidden=4304)
    return resolve_config("so400m")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _case(quick: bool, frames: int, side: int, tiling: TilingConfig, threads: int, out) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_tokenizer(_config(quick)).eval()
    x = torch.rand(side, side, 3) * 2 - 1 if frames == 1 else torch.rand(frames, side, side, 3) * 2 - 1
    with torch.no_grad():
        base = _rss_mb()
        c0, w0 = time.process_time(), time.perf_counter()
        model.decode(model.encode(x, tiling=tiling), tiling=tiling)
        out.put((time.process_time() - c0, time.perf_counter() - w0, _rss_mb() - base))


def run_case(quick: bool, frames: int, side: int, tiling: TilingConfig, threads: int) -> tuple[float, ...]:
    """(CPU seconds, wall seconds, peak extra MB) of one round trip in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_case, args=(quick, frames, side, tiling, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2+2 blocks at 64x64 (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="1 keeps CPU-time ratios steady")
    args = parser.parse_args()
    side = 64 if args.quick else 256
    name = "so400m layout, 2+2 blocks (quick)" if args.quick else "so400m (AToken So/C)"
    print(f"{name}: {sum(p.numel() for p in build_tokenizer(_config(args.quick)).parameters()):,} parameters")
    for label, frames in (("image", 1), ("clip16", 16)):
        cpu, wall, mb = run_case(args.quick, frames, side, OFFICIAL, args.threads)
        print(f"target so400m_{label}_{side}px_encode_decode: cpu {cpu:.2f} s, wall {wall:.2f} s, "
              f"peak +{mb:.0f} MB")
    for label, tiling in (("official_chunks", OFFICIAL), ("kv_cached_tiles", CACHED)):
        t16 = run_case(args.quick, 16, side, tiling, args.threads)[0]
        t64 = run_case(args.quick, 64, side, tiling, args.threads)[0]
        print(f"target so400m_{label}_cpu_time_ratio_64_over_16: {t64 / t16:.2f} (linear = 4.0; "
              f"{t16:.2f} s -> {t64:.2f} s)")


if __name__ == "__main__":
    main()
