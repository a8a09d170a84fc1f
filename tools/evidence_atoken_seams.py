"""Reconstruction PSNR at chunk seams on real held-out video: AToken's 16-frame chunks vs KV-cached tiling.

A converted AToken model reconstructs a video in independent 16-frame chunks (``TilingConfig(16,
cache_tiles=0)``, the official inference path); avtok's KV-cached tiling (``cache_tiles=1``) lets each
chunk also attend to the previous one. This script scores both on the held-out tail of a real clip:
per-frame PSNR (``avtok.eval.psnr`` on uint8 frames) averaged over the frames next to a chunk seam (the
last frame of one chunk and the first of the next: 2 frames per seam), over the interior frames, and over
all frames — and, as the fair reference for seams, over the interior frames at the same place in a
temporal patch (the first or last of its 4 frames: every seam frame is one).

Without ``--model`` it first trains its own models in the official AToken layout at tiny width (the
``tiny-atoken`` preset: the fixture's architecture, 2+2 blocks of width 64) on the clip's frames before
the held-out tail: one trained with the official chunks, one with KV-cached tiles (``--train``), each for
``--train-minutes`` (or exactly ``--train-steps``) with a fixed seed. These are briefly trained tiny
models, not the released weights: with a converted So/C (``avtok-tokenizer convert --from atoken ...``)
run ``--model DIR`` to measure the real thing.

Run:  python tools/evidence_atoken_seams.py                              (2 × 6 min training + scoring)
      python tools/evidence_atoken_seams.py --model models/atoken-soc    (a converted checkpoint)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from avtok.eval import psnr
from avtok.media_io import AVClip, read_clip, sample_path
from avtok.tokenizer import TilingConfig, VisualTokenizer, build_tokenizer, resolve_config, save_pretrained
from avtok.tokenizer.visual.reconstruct import VisualReconstructor, crop_clip

TILE_FRAMES = 16
MODES = {"official_chunks": TilingConfig(tile_frames=TILE_FRAMES, cache_tiles=0),
         "kv_cached_tiles": TilingConfig(tile_frames=TILE_FRAMES, cache_tiles=1)}
TRAIN_WINDOW = 2 * TILE_FRAMES  # two chunks per window: the second one sees the cache when training cached
TRAIN_BATCH = 1
TRAIN_LR = 2e-3


@dataclass(kw_only=True)
class SeamReport:
    """Per mode: reconstructed uint8 frames ``(T, H, W, 3)`` and per-frame PSNR ``(T,)``; the reference."""

    reference: Tensor  # (T, H, W, 3) uint8, the (centre-cropped) held-out frames
    frames: dict[str, Tensor]
    psnr: dict[str, Tensor]
    seam: Tensor  # (T,) bool: frame next to a chunk seam
    patch_edge: Tensor  # (T,) bool: first or last frame of a temporal patch, not at a seam

    def rows(self) -> list[tuple[str, float, float, float, float]]:
        """(mode, mean PSNR over seam frames, interior frames, interior patch-edge frames, all) in dB."""
        mean = lambda p, m: p[m].mean().item() if m.any() else float("nan")  # noqa: E731
        return [(mode, mean(p, self.seam), mean(p, ~self.seam), mean(p, self.patch_edge), p.mean().item())
                for mode, p in self.psnr.items()]


def seam_mask(frames: int, tile: int = TILE_FRAMES) -> Tensor:
    """``(T,)`` True for the last frame of a chunk and the first of the next (the clip's end is no seam)."""
    t = torch.arange(frames)
    return ((t % tile == tile - 1) & (t < frames - 1)) | ((t % tile == 0) & (t > 0))


def patch_edge_mask(frames: int, t_patch: int, tile: int = TILE_FRAMES) -> Tensor:
    """``(T,)`` True for the first and last frame of each temporal patch that is not a seam frame."""
    t = torch.arange(frames)
    return ((t % t_patch == 0) | (t % t_patch == t_patch - 1)) & ~seam_mask(frames, tile)


def score(model: VisualTokenizer, held: AVClip) -> SeamReport:
    """Reconstruct ``held`` under each mode of ``MODES`` and score every frame against the reference."""
    reference = crop_clip(held, model)
    frames, scores = {}, {}
    for mode, tiling in MODES.items():
        rec = VisualReconstructor(model.eval(), tiling=tiling).reconstruct(reference).video  # (T, H, W, 3)
        frames[mode] = rec
        scores[mode] = psnr(rec, reference.video, data_range=255.0)  # (T,) dB
    n = reference.video.shape[0]
    return SeamReport(reference=reference.video, frames=frames, psnr=scores, seam=seam_mask(n),
                      patch_edge=patch_edge_mask(n, model.config.patch[0]))


def train(video: Tensor, tiling: TilingConfig, *, minutes: float, steps: int | None, seed: int,
          preset: str = "tiny-atoken") -> tuple[VisualTokenizer, int, float]:
    """Fit ``preset`` (L1 on the posterior mean) to random ``TRAIN_WINDOW``-frame windows of the uint8
    ``video`` ``(T, H, W, 3)`` under ``tiling``. Returns (model, steps done, last loss)."""
    config = resolve_config(preset)
    config.tiling = tiling
    torch.manual_seed(seed)
    model = build_tokenizer(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=TRAIN_LR, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    deadline = time.perf_counter() + 60 * minutes
    step, loss = 0, torch.tensor(float("nan"))
    while (step < steps) if steps is not None else (time.perf_counter() < deadline):
        starts = torch.randint(0, video.shape[0] - TRAIN_WINDOW + 1, (TRAIN_BATCH,), generator=gen).tolist()
        windows = [video[s:s + TRAIN_WINDOW].float().div_(127.5).sub_(1.0) for s in starts]  # B×(F, H, W, 3)
        _, recs = model(windows)
        loss = torch.stack([(r - w).abs().mean() for r, w in zip(recs, windows, strict=True)]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    return model.eval(), step, loss.item()


def read_split(clip: str, heldout_frames: int) -> tuple[Tensor, AVClip]:
    """The clip's frames before the held-out tail (uint8 ``(T, H, W, 3)``) and the tail as a clip."""
    path = Path(clip) if Path(clip).is_file() else sample_path(clip)
    full = read_clip(path)
    if full.num_frames < heldout_frames + TRAIN_WINDOW:
        raise ValueError(f"{clip}: {full.num_frames} frames, need --heldout-frames {heldout_frames} plus "
                         f"{TRAIN_WINDOW} to train on; pass a longer clip or fewer --heldout-frames")
    cut = full.num_frames - heldout_frames
    return full.video[:cut], full.frames(cut, full.num_frames)


def print_table(title: str, report: SeamReport) -> None:
    n_seam, n_inner = int(report.seam.sum()), int((~report.seam).sum())
    print(f"\n{title}: {report.reference.shape[0]} held-out frames "
          f"{tuple(report.reference.shape[1:3])}, {n_seam} seam / {n_inner} interior frames")
    print("| inference | seam (dB) | interior (dB) | interior patch-edge (dB) | all frames (dB) "
          "| seam − patch-edge |")
    print("|---|---|---|---|---|---|")
    for mode, seam, interior, edge, overall in report.rows():
        print(f"| {mode} | {seam:.2f} | {interior:.2f} | {edge:.2f} | {overall:.2f} | {seam - edge:+.2f} |")
    official, cached = report.frames["official_chunks"], report.frames["kv_cached_tiles"]
    print(f"first chunk identical in both modes: {torch.equal(official[:TILE_FRAMES], cached[:TILE_FRAMES])}")
    if official.shape[0] > TILE_FRAMES:  # where the cache acts: how far apart the two modes' frames are
        diff = (official[TILE_FRAMES:].float() - cached[TILE_FRAMES:].float()).abs()
        between = psnr(official[TILE_FRAMES:], cached[TILE_FRAMES:], data_range=255.0).mean().item()
        print(f"after the first chunk, official vs cached frames: mean |diff| {diff.mean().item():.2f} "
              f"uint8 levels, max {diff.max().item():.0f}, PSNR between them {between:.2f} dB")


def main(argv: list[str] | None = None) -> dict[str, SeamReport]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a converted / save_pretrained visual tokenizer folder: "
                        "score it (no training)")
    parser.add_argument("--clip", default="concert", help="a sample name or a video file (default concert)")
    parser.add_argument("--heldout-frames", type=int, default=192, help="the clip's tail, never trained on")
    parser.add_argument("--train", nargs="+", choices=sorted(MODES), default=["official_chunks",
                        "kv_cached_tiles"], help="the tiling each trained model uses while training")
    parser.add_argument("--train-minutes", type=float, default=6.0, help="per trained model")
    parser.add_argument("--train-steps", type=int, help="exact steps per model (overrides --train-minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="1: two threads on a busy 2-core box spin")
    parser.add_argument("--save", type=Path, help="save each trained model under this folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_video, held = read_split(args.clip, args.heldout_frames)
    reports = {}
    if args.model is not None:
        model = VisualTokenizer.from_pretrained(args.model)
        reports["model"] = report = score(model, held)
        print_table(f"{args.model}", report)
        return reports
    print(f"{args.clip}: training on frames 0-{train_video.shape[0] - 1} "
          f"({tuple(train_video.shape[1:3])}), scoring the last {held.num_frames}", flush=True)
    for mode in args.train:
        model, steps, loss = train(train_video, MODES[mode], minutes=args.train_minutes,
                                   steps=args.train_steps, seed=args.seed)
        if args.save is not None:
            save_pretrained(model, args.save / f"trained_{mode}")
        with torch.inference_mode():
            reports[mode] = report = score(model, held)
        print_table(f"tiny-atoken trained with {mode}: {steps} steps, last training L1 {loss:.4f}", report)
    return reports


if __name__ == "__main__":
    main()
