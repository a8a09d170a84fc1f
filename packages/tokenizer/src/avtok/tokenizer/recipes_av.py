"""AV tokenizer recipe: concert windows → (video, normalised mel) pairs, VFAL / vanilla step functions,
held-out metrics and artifacts (frame strip, spectrograms, mp4) through ``avtok.eval``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from torch import Tensor

from avtok.eval.artifacts import frame_strip_png, short_mp4, spectrogram_png
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip, log_mel
from avtok.tokenizer.av_clip import AVClipReconstructor, clip_wave
from avtok.tokenizer.av_config import MEL, resolve_av_config
from avtok.tokenizer.av_tokenizer import AVTokenizer, build_av_tokenizer
from avtok.tokenizer.curriculum import RoundRobinTasks, Stage
from avtok.tokenizer.recipes import (
    RunConfig,
    StageHooks,
    batch_loader,
    evenly,
    l1,
    load_media,
    resolve_data,
    split_holdout,
    windows,
)
from avtok.tokenizer.training.distributed import unwrap
from avtok.tokenizer.training.losses import avtok_objective

__all__ = ["AVContext", "prepare", "build", "hooks", "heldout_report", "window_tensors"]


@dataclass(kw_only=True)
class AVContext:
    train_video: Tensor  # (N, T, H, W, 3) in [-1, 1]
    train_mel: Tensor  # (N, 80, F) log-mel (not normalised)
    held_out: list[AVClip]  # held-out windows at the model's fps / size
    held_video: Tensor
    held_mel: Tensor


def window_tensors(clips: list[AVClip], num_samples: int) -> tuple[Tensor, Tensor]:
    """Windows → video ``(N, T, H, W, 3)`` in [-1, 1] and log-mel ``(N, 80, F)`` at 22.05 kHz."""
    video = torch.stack([c.video_float() for c in clips])
    waves = torch.stack([clip_wave(c, num_samples) for c in clips])  # (N, samples)
    return video, log_mel(waves, MEL)


def prepare(cfg: RunConfig) -> AVContext:
    """Read the data at the preset's fps / size, hold out the tail, cut windows (hop = half a window)."""
    c = resolve_av_config(cfg.preset)
    train_w, held_w = [], []
    for clip in load_media(resolve_data(cfg.data), fps=c.fps, size=(c.height, c.width)):
        train, held = split_holdout(clip, cfg.holdout_seconds)
        train_w += windows(train, c.frames, max(1, c.frames // 2))
        if held is not None:
            held_w += windows(held, c.frames, c.frames)
    if not train_w:
        raise ValueError(
            f"--data {cfg.data}: no training window of {c.seconds:.2f} s left after holding out "
            f"{cfg.holdout_seconds} s; use longer clips or a smaller --holdout-seconds"
        )
    held_w = evenly(held_w or train_w[-1:], cfg.eval_windows)
    tv, tm = window_tensors(train_w, c.num_samples)
    hv, hm = window_tensors(held_w, c.num_samples)
    return AVContext(train_video=tv, train_mel=tm, held_out=held_w, held_video=hv, held_mel=hm)


def build(cfg: RunConfig, ctx: AVContext, stage: Stage) -> AVTokenizer:
    model = build_av_tokenizer(cfg.preset)
    model.fit_mel_stats(ctx.train_mel)  # per-bin range of the training mels (saved with the weights)
    return model


def _usage(model: AVTokenizer, indices: Tensor) -> float:
    return float(indices.unique().numel()) / model.config.codebook_size


def _step(model: AVTokenizer, item: dict) -> dict[str, Tensor | float]:
    """One micro-step; ``model`` may be the runtime's DDP wrapper: call it, read attributes off ``unwrap``."""
    video, mel = item["batch"]["video"], item["batch"]["mel"]
    dev = next(model.parameters()).device
    video, mel = video.to(dev), mel.to(dev)
    if item["task"] == "video":
        tokens, rec = model(video=video)
        out = avtok_objective(video=l1(rec.video, video))
    else:
        tokens, rec = model(video=video, mel=mel)
        out = avtok_objective(video=l1(rec.video, video), audio_mel=l1(rec.mel, mel))
    out["codebook_usage"] = _usage(unwrap(model), tokens.indices)
    return out


def hooks(cfg: RunConfig, ctx: AVContext, model: AVTokenizer, stage: Stage) -> StageHooks:
    mel = model.normalize_mel(ctx.train_mel)
    items = [{"video": v, "mel": m} for v, m in zip(ctx.train_video, mel, strict=True)]
    task = next(iter(stage.tasks))
    data = RoundRobinTasks({task: batch_loader(items, batch_size=cfg.batch_size, seed=cfg.seed)}, {task: 1})
    held_mel = model.normalize_mel(ctx.held_mel)
    with_audio = "av" in stage.tasks

    def evaluate(net: AVTokenizer, step: int) -> dict[str, float]:
        dev = net.to_latent.weight.device
        v, m = ctx.held_video.to(dev), held_mel.to(dev)
        tokens, rec = net(video=v, mel=m if with_audio else None)
        mse = (rec.video.float() - v).square().mean()
        out = {
            "video_l1": float(l1(rec.video, v)),
            "video_psnr": float(10 * torch.log10(4 / mse)),
            "codebook_usage": _usage(net, tokens.indices),
        }
        if with_audio:
            out["mel_l1"] = float(l1(rec.mel, m))
        out["loss"] = out["video_l1"] + out.get("mel_l1", 0.0)
        return out

    def artifacts(net: AVTokenizer, step: int, out_dir: Path) -> list[Path]:
        ref = ctx.held_out[0]
        rec = AVClipReconstructor(net).reconstruct(ref)
        return [
            frame_strip_png(ref, rec, out_dir / "strip.png"),
            spectrogram_png(
                out_dir / "spectrogram.png", (ref.audio, ref.sample_rate), (rec.audio, rec.sample_rate)
            ),
            short_mp4(rec, out_dir / "reconstruction.mp4"),
        ]

    return StageHooks(data=data, step_fn=_step, evaluate=evaluate, artifacts=artifacts, grad_accum=data.cycle)


def heldout_report(model: AVTokenizer, clips: list[AVClip], *, frame_fid: bool = True) -> pl.DataFrame:
    """avtok.eval's reconstruction summary of ``model`` next to the trivial baselines (one row each)."""
    cfg = ReconstructionConfig(frame_fid=frame_fid, codebook_size=model.config.codebook_size)
    model.eval()
    return evaluate_reconstruction(AVClipReconstructor(model), clips, cfg=cfg).summary
