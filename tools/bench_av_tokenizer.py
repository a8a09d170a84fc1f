"""Benchmark the AVTok-style AV tokenizer (avtok-tokenizer): cost of fusion, and the FSQ backend.

1. Fusion cost: one joint encode + decode of a paper-sized window (16×128×128 video + 80×384 mel →
   1152 tokens; encoder sequence 2656) against the two modality-dropped passes (video-only, audio-only)
   of the same model, measured side by side (medians of interleaved repeats). Model: paper token
   budget and patching, half the width (d 384, 6 heads) and 2 + 2 blocks so a CPU run stays short.
2. FSQ backend: one training step (forward + backward) of the tiny preset with kernels' FSQ on the
   ``torch`` reference and on ``auto`` (numba on CPU, the config default), each in its own subprocess,
   interleaved. (Before kernels restored torch's thread count after numba's first parallel call, ``auto``
   made every later torch op ~10x slower; this guards against that coming back.)

Targets use the process's CPU time with one thread (the work done, which other jobs on a shared box
barely disturb); wall-clock numbers are printed beside them.

Run:  python tools/bench_av_tokenizer.py            (≈1–2 min on a 2-core CPU)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time

import torch

from avtok.tokenizer.av.config import resolve_av_config
from avtok.tokenizer.av.model import build_av_tokenizer
from avtok.train.transformer import TransformerConfig


def _timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


@torch.no_grad()
def fusion(repeats: int) -> float:
    block = TransformerConfig(dim=384, depth=2, heads=6, mlp_hidden=1536)
    cfg = dataclasses.replace(resolve_av_config("paper"), encoder=block, decoder=block)
    torch.manual_seed(0)
    model = build_av_tokenizer(cfg).eval()
    video = torch.rand(1, cfg.frames, cfg.height, cfg.width, 3) * 2 - 1
    mel = torch.rand(1, cfg.n_mels, cfg.mel_frames) * 2 - 1
    cases = {"joint": (video, mel), "video_only": (video, None), "audio_only": (None, mel)}
    model(video, mel)  # warm-up
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for _ in range(repeats):
        for key, (v, m) in cases.items():
            times[key].append(_timed(lambda v=v, m=m: model(v, m)))
    cpu = {k: statistics.median(c for c, _ in t) for k, t in times.items()}
    wall = {k: statistics.median(w for _, w in t) for k, t in times.items()}
    print("encode+decode, paper token budget (768 + 384), d 384, 2+2 blocks, 1 thread")
    for k in cases:
        print(f"  {k:>10}: cpu {cpu[k]:.3f} s  wall {wall[k]:.3f} s")
    ratio = cpu["joint"] / (cpu["video_only"] + cpu["audio_only"])
    print(f"  joint / (video_only + audio_only): cpu {ratio:.2f}, wall "
          f"{wall['joint'] / (wall['video_only'] + wall['audio_only']):.2f}")
    return ratio


def _step_worker(backend: str, steps: int) -> None:
    """One subprocess: median CPU / wall time of a tiny-preset training step with this FSQ backend."""
    torch.set_num_threads(1)
    cfg = dataclasses.replace(resolve_av_config("tiny"), fsq_backend=backend)
    torch.manual_seed(0)
    model = build_av_tokenizer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    video, mel = torch.rand(1, 8, 32, 32, 3) * 2 - 1, torch.rand(1, 80, 48) * 2 - 1

    def step() -> None:
        _, rec = model(video, mel)
        loss = (rec.video - video).abs().mean() + (rec.mel - mel).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()  # warm-up (numba JIT compile)
    times = [_timed(step) for _ in range(steps)]
    print(json.dumps({"cpu": statistics.median(c for c, _ in times),
                      "wall": statistics.median(w for _, w in times)}))


def fsq_backends(repeats: int, steps: int) -> float:
    runs: dict[str, list[dict]] = {"torch": [], "auto": []}
    for _ in range(repeats):
        for backend in runs:
            out = subprocess.run([sys.executable, __file__, "--worker", backend, "--steps", str(steps)],
                                 check=True, capture_output=True, text=True).stdout
            runs[backend].append(json.loads(out.strip().splitlines()[-1]))
    med = {b: {k: statistics.median(r[k] for r in rs) for k in ("cpu", "wall")} for b, rs in runs.items()}
    print("tiny preset training step (forward + backward + Adam), 1 torch thread")
    for b, m in med.items():
        print(f"  fsq_backend={b:>5}: cpu {m['cpu'] * 1e3:.1f} ms  wall {m['wall'] * 1e3:.1f} ms")
    ratio = med["auto"]["wall"] / med["torch"]["wall"]
    print(f"  auto / torch: wall {ratio:.1f}x, cpu {med['auto']['cpu'] / med['torch']['cpu']:.1f}x")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", choices=("torch", "auto"))
    args = parser.parse_args()
    if args.worker:
        _step_worker(args.worker, args.steps)
        return
    torch.set_num_threads(1)
    joint = fusion(args.repeats)
    slowdown = fsq_backends(max(3, args.repeats // 2), args.steps)
    print(f"target joint_over_separate_cpu: {joint:.2f} (goal <= 1.5) {'met' if joint <= 1.5 else 'missed'}")
    ok = slowdown <= 1.25
    print(f"target fsq_auto_over_torch_step_wall: {slowdown:.2f} (goal <= 1.25, auto default costs no more "
          f"than the torch reference) {'met' if ok else 'missed'}")


if __name__ == "__main__":
    main()
