"""Benchmark: avtok.media_io decode + resize + resample + log-mel vs a plain PyAV decode-only loop.

Runs both on the 60 s iscc-samples concert clip (176x144, 24 fps, stereo AAC) in the same process,
alternating, and reports medians over --repeats runs:

    python tools/bench_media.py [--repeats 11] [--size 128] [--sample concert]

Targets: the whole pipeline at >= 0.5x the speed of decode alone, and >= 20x real time at 128x128.

torch runs with 1 intra-op thread by default (--torch-threads), as in a DataLoader worker, which is
where this pipeline runs during training; FFmpeg's decoder threads are unaffected. On the shared
2-core dev box, 2 OpenMP threads made log_mel ~4x slower under load (0.26 s vs 0.065 s).
"""

from __future__ import annotations

import argparse
import statistics
import time

import av
import torch

from avtok.media_io import log_mel, probe, read_clip, sample_path


def decode_only(path: str) -> int:
    """Baseline: demux + decode every video and audio frame, nothing else (threaded video decoder)."""
    frames = 0
    with av.open(path) as container:
        container.streams.video[0].thread_type = "AUTO"
        for packet in container.demux(container.streams.video[0], container.streams.audio[0]):
            frames += len(packet.decode())
    return frames


def pipeline(path: str, size: int) -> tuple[int, int]:
    """avtok: RGB frames at size x size (centre crop), mono 22.05 kHz audio, HiFi-GAN log-mel."""
    clip = read_clip(path, size=size, resize_mode="crop", sample_rate=22050, channels=1)
    mel = log_mel(clip.audio[0])  # (80, frames)
    return clip.num_frames, int(mel.shape[-1])


def _time(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--sample", default="concert", help="avtok.media_io.sample_path name")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    path = str(sample_path(args.sample))
    seconds = probe(path).duration
    frames, mel_frames = pipeline(path, args.size)  # warm-up (imports, file cache)
    decode_only(path)
    base, ours = [], []
    for _ in range(args.repeats):
        base.append(_time(decode_only, path))
        ours.append(_time(pipeline, path, args.size))
    t_base, t_ours = statistics.median(base), statistics.median(ours)
    print(
        f"file: {path} ({seconds:.1f} s, {frames} frames -> {args.size}x{args.size}, {mel_frames} mel frames)"
    )
    print(f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats} (medians)")
    print(f"decode only (PyAV loop):            {t_base:.3f} s  = {seconds / t_base:6.1f}x real time")
    print(f"decode+resize+resample+mel (avtok): {t_ours:.3f} s  = {seconds / t_ours:6.1f}x real time")
    ratio, realtime = t_base / t_ours, seconds / t_ours
    print(f"target pipeline_vs_decode: {ratio:.3f}x (goal >= 0.5x) {'met' if ratio >= 0.5 else 'missed'}")
    verdict = "met" if realtime >= 20 else "missed"
    print(f"target realtime_{args.size}px: {realtime:.1f}x (goal >= 20x) {verdict}")


if __name__ == "__main__":
    main()
