"""Benchmark the released AToken architecture (the ``so400m`` preset = AToken So/C) on CPU.

1. Cost of one encode + decode round trip and its peak memory, for one 256×256 image and one 16×256×256
   clip (random weights: the architecture, not the checkpoint, sets the cost). float32,
   ``torch.inference_mode()``. Each case runs in a fresh process; memory = that process's peak resident
   set (``peak_rss_mb``: the kernel's high-water mark, so torch's allocator is counted) and its resident set
   after building the model, so peak − built is what the round trip itself adds. The timed call follows a
   32×32 warm-up round trip (one-off setup is not the per-clip cost).
2. Scaling: CPU time(64 frames) / CPU time(16 frames) under the official chunking (independent 16-frame
   chunks, ``TilingConfig(16, cache_tiles=0)``, the converted model's default) and under avtok's KV-cached
   tiling (``cache_tiles=1``: each chunk also attends to the previous one). Linear is 4.0.

Run:  python tools/bench_atoken.py            (so400m: 27+27 blocks, width 1152, 2 threads: ~20 min, ~5 GB)
      python tools/bench_atoken.py --quick    (the same layout with 2+2 blocks at 64×64 — seconds)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import torch

from avtok.eval import peak_rss_mb
from avtok.tokenizer import TilingConfig, atoken_config, build_tokenizer, resolve_config

OFFICIAL = TilingConfig(tile_frames=16, cache_tiles=0)
CACHED = TilingConfig(tile_frames=16, cache_tiles=1)


def _config(quick: bool):
    if quick:
        return atoken_config(dim=1152, depth=2, heads=16, mlp_hidden=4304)
    return resolve_config("so400m")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(s for s in status if s.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024  # kB


def _case(quick: bool, frames: int, side: int, tiling: TilingConfig, threads: int, out) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_tokenizer(_config(quick)).eval()
    x = torch.rand(side, side, 3) * 2 - 1 if frames == 1 else torch.rand(frames, side, side, 3) * 2 - 1
    built = _rss_mb()
    with torch.inference_mode():
        model.decode(model.encode(torch.zeros(32, 32, 3)))  # warm-up: first-call setup is not the cost
        c0, w0 = time.process_time(), time.perf_counter()
        model.decode(model.encode(x, tiling=tiling), tiling=tiling)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    out.put((cpu, wall, peak_rss_mb(), built))


def run_case(quick: bool, frames: int, side: int, tiling: TilingConfig, threads: int) -> tuple[float, ...]:
    """(CPU s, wall s, peak RSS MB, RSS after build MB) of one round trip in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_case, args=(quick, frames, side, tiling, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"bench case frames={frames} exited with {proc.exitcode}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2+2 blocks at 64x64 (a smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads per case (default 2)")
    args = parser.parse_args()
    side = 64 if args.quick else 256
    name = "so400m layout, 2+2 blocks (quick)" if args.quick else "so400m (AToken So/C)"
    with torch.device("meta"):  # counted without allocating the weights in this process
        params = sum(p.numel() for p in build_tokenizer(_config(args.quick)).parameters())
    print(f"{name}: {params:,} parameters, float32, {args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for label, frames, tiling in (("image", 1, OFFICIAL), ("clip16", 16, OFFICIAL)):
        cpu, wall, peak, built = results[label] = run_case(args.quick, frames, side, tiling, args.threads)
        print(f"target so400m_{label}_{side}px_encode_decode: cpu {cpu:.2f} s, wall {wall:.2f} s, peak RSS "
              f"{peak:.0f} MB (model built {built:.0f} MB, round trip +{peak - built:.0f} MB)", flush=True)
    for label, tiling in (("official_chunks", OFFICIAL), ("kv_cached_tiles", CACHED)):
        same = tiling is OFFICIAL  # the official 16-frame case was measured above
        t16 = results["clip16"] if same else run_case(args.quick, 16, side, tiling, args.threads)
        t64 = run_case(args.quick, 64, side, tiling, args.threads)
        print(f"target so400m_{label}_cpu_time_ratio_64_over_16: {t64[0] / t16[0]:.2f} (linear = 4.0; "
              f"cpu {t16[0]:.2f} s -> {t64[0]:.2f} s, wall {t16[1]:.2f} s -> {t64[1]:.2f} s, 64-frame peak "
              f"RSS {t64[2]:.0f} MB)", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
