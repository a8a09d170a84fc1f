"""Benchmark the twin DiT: one guided denoising step at the ``ovi-11b`` block widths, and GPU targets.

CPU (always): a model with the official widths (d 3072, 24 heads, FFN 14336, text 4096, 512 text rows,
conv audio embedding) but only ``--blocks`` fusion blocks, random weights, one UniPC step with CFG
(conditional + negative pass with skip-layer guidance) on a reduced latent grid; prints the time and the
peak resident memory, and the extrapolation to 30 blocks.

GPU targets (``target ...`` lines; ``SKIP`` without a CUDA device): the full 11B model in bfloat16 samples
Ovi's 720x720, 121-frame, 5 s size (video latent 31 x 44 x 44 -> 15,004 tokens, 157 audio tokens) in 50
UniPC steps with CFG on one 80 GB GPU within 90 s (Ovi's README reports ~83-96 s) without running out of
memory.

    python tools/bench_generator.py --blocks 2 --frames 3 --size 16
"""

from __future__ import annotations

import argparse
import time

import torch

from avtok.eval import peak_rss_mb
from avtok.generator.ovi.config import LatentSpec, build_config
from avtok.generator.ovi.sampling import SamplerConfig, TextCondition, sample
from avtok.generator.ovi.twin_dit import TwinDiT

TARGET_SECONDS = 90.0
OFFICIAL = {"frames": 31, "size": 44, "audio": 157}  # 720x720 snapped to 704, 121 frames, 5 s


def _model(blocks: int, device: str, dtype: torch.dtype) -> TwinDiT:
    cfg = build_config("ovi-11b", depth=blocks)
    with torch.device("meta"):
        model = TwinDiT(cfg)
    model = model.to_empty(device=device).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model.eval()


def _spec(frames: int, size: int, audio: int) -> LatentSpec:
    return LatentSpec(video_frames=frames, video_height=size, video_width=size, video_channels=48,
                      video_latent_rate=frames / 5.0, audio_tokens=audio, audio_channels=20,
                      audio_latent_rate=audio / 5.0)


def _text(device: str, dtype: torch.dtype) -> TextCondition:
    g = torch.Generator().manual_seed(0)
    emb = [torch.randn(1, n, 4096, generator=g).to(device, dtype) for n in (40, 12, 12)]
    return TextCondition(text=emb[0], negative_video=emb[1], negative_audio=emb[2])


def cpu_step(blocks: int, frames: int, size: int, audio: int, threads: int) -> None:
    torch.set_num_threads(threads)
    model = _model(blocks, "cpu", torch.float32)
    spec, text = _spec(frames, size, audio), _text("cpu", torch.float32)
    cfg = SamplerConfig(steps=1, slg_layer=1 if blocks > 1 else None)
    start, cpu_start = time.perf_counter(), time.process_time()
    sample(model, spec, text, cfg=cfg, seeds=[0])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak_gb = peak_rss_mb() / 1024
    tokens = frames * size * size // 4
    print(f"cpu one guided step (2 passes), ovi-11b widths, {blocks} blocks, {tokens} video + {audio} audio "
          f"tokens, {threads} threads: {seconds:.2f} s wall ({cpu_seconds:.2f} s CPU), "
          f"peak RSS {peak_gb:.2f} GB; "
          f"x{30 / blocks:.0f} for 30 blocks ~ {seconds * 30 / blocks:.1f} s")


def gpu_targets(steps: int) -> None:
    name = f"full-11b bf16 720x720x121 (5 s) {steps} steps CFG on one 80 GB GPU <= {TARGET_SECONDS:.0f} s"
    if not torch.cuda.is_available():
        print(f"target {name}: SKIP (no CUDA device)")
        return
    torch.cuda.reset_peak_memory_stats()
    try:
        model = _model(30, "cuda", torch.bfloat16)
        spec = _spec(OFFICIAL["frames"], OFFICIAL["size"], OFFICIAL["audio"])
        text = _text("cuda", torch.bfloat16)
        torch.cuda.synchronize()
        start = time.perf_counter()
        sample(model, spec, text, cfg=SamplerConfig(steps=steps, slg_layer=11), seeds=[0])
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        print(f"target {name}: FAIL (out of memory)")
        return
    peak = torch.cuda.max_memory_allocated() / 1024**3
    verdict = "PASS" if seconds <= TARGET_SECONDS else "FAIL"
    print(f"target {name}: {verdict} ({seconds:.1f} s, peak {peak:.1f} GB, {torch.cuda.get_device_name()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--frames", type=int, default=3, help="video latent frames on CPU")
    ap.add_argument("--size", type=int, default=16, help="video latent height = width on CPU (even)")
    ap.add_argument("--audio", type=int, default=16, help="audio latent tokens on CPU")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50, help="sampling steps of the GPU target")
    args = ap.parse_args()
    cpu_step(args.blocks, args.frames, args.size, args.audio, args.threads)
    gpu_targets(args.steps)


if __name__ == "__main__":
    main()
