"""Visual tokenizer recipe (AToken curriculum): concert frames as images (``image_rec``) and 8-frame
windows as videos (``video_rec``), round-robin at the stage's ratio; images get L1 + Inception perceptual +
Gram (``--no-gram`` drops Gram: the ablation), videos L1 only (AToken §3.5), plus KL while latents are
continuous. Held-out windows are scored with ``avtok.eval`` (video metrics; the audio is passed through)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import torch
from torch import Tensor

from avtok.eval.clip_metrics import ClipMetricsConfig
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip
from avtok.tokenizer.config import resolve_config
from avtok.tokenizer.curriculum import RoundRobinTasks, Stage, available_ratios
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
from avtok.tokenizer.reconstruct import VisualReconstructor
from avtok.tokenizer.training.losses import (
    ImageReconstructionLoss,
    ReconstructionWeights,
    atoken_objective,
    kl_loss,
)
from avtok.tokenizer.visual import VisualTokenizer, build_tokenizer

__all__ = ["VisualContext", "prepare", "build", "hooks", "heldout_report", "VISUAL_FPS", "VIDEO_FRAMES"]

VISUAL_FPS = 8.0  # frames per second read for the visual tokenizer (more distinct frames per second)
VIDEO_FRAMES = 8  # frames per video sample (2 latent frames with the 4-frame patch)


@dataclass(kw_only=True)
class VisualContext:
    images: Tensor  # (N, H, W, 3) in [-1, 1]
    videos: Tensor  # (M, T, H, W, 3)
    held_out: list[AVClip]
    held_video: Tensor  # (K, T, H, W, 3)
    backbone: object | None


def prepare(cfg: RunConfig) -> VisualContext:
    side = cfg.image_size
    vids, held = [], []
    for clip in load_media(resolve_data(cfg.data), fps=VISUAL_FPS, size=(side, side)):
        train, tail = split_holdout(clip, cfg.holdout_seconds)
        vids += windows(train, VIDEO_FRAMES, VIDEO_FRAMES // 2)
        if tail is not None:
            held += windows(tail, VIDEO_FRAMES, VIDEO_FRAMES)
    if not vids:
        raise ValueError(f"--data {cfg.data}: no {VIDEO_FRAMES}-frame window left after the hold-out")
    videos = torch.stack([w.video_float() for w in vids])  # (M, T, H, W, 3)
    images = videos[:, ::2].flatten(0, 1)  # every other frame as an image sample
    held = evenly(held or vids[-1:], cfg.eval_windows)
    backbone = None
    if cfg.perceptual:
        from avtok.tokenizer.training.perceptual import InceptionFeatureMaps

        backbone = InceptionFeatureMaps()
    return VisualContext(
        images=images,
        videos=videos,
        held_out=held,
        held_video=torch.stack([w.video_float() for w in held]),
        backbone=backbone,
    )


def build(cfg: RunConfig, ctx: VisualContext, stage: Stage) -> VisualTokenizer:
    config = resolve_config(cfg.preset)
    config.use_fsq = stage.use_fsq
    config.__post_init__()
    return build_tokenizer(config)


def hooks(cfg: RunConfig, ctx: VisualContext, model: VisualTokenizer, stage: Stage) -> StageHooks:
    ratios = available_ratios(stage.tasks, {"image_rec", "video_rec"})
    sources = {
        "image_rec": batch_loader(list(ctx.images), batch_size=cfg.batch_size, seed=cfg.seed),
        "video_rec": batch_loader(list(ctx.videos), batch_size=max(1, cfg.batch_size // 4), seed=cfg.seed),
    }
    data = RoundRobinTasks({k: sources[k] for k in ratios}, ratios)
    weights = ReconstructionWeights(gram=1e3 if cfg.gram else 0.0)
    image_loss = ImageReconstructionLoss(ctx.backbone, weights=weights)

    def step(net: VisualTokenizer, item: dict) -> dict:
        batch = item["batch"].to(next(net.parameters()).device)
        out, recs = net(list(batch))
        if item["task"] == "image_rec":
            terms = image_loss(recs, list(batch))
        else:
            terms = {"l1": l1(torch.stack(recs), batch)}
            terms["rec"] = terms["l1"]
        kl = kl_loss(out.mean, out.logvar) if out.mean is not None and out.logvar is not None else None
        res = atoken_objective(rec=terms["rec"], kl=kl, parts=terms)
        return {k: v for k, v in res.items() if k == "loss" or not k.startswith("_")}

    def evaluate(net: VisualTokenizer, step: int) -> dict[str, float]:
        v = ctx.held_video.to(next(net.parameters()).device)
        _, recs = net(list(v))
        rec = torch.stack(recs).float()
        mse = (rec - v).square().mean()
        return {"loss": float(l1(rec, v)), "video_psnr": float(10 * torch.log10(4 / mse))}

    return StageHooks(data=data, step_fn=step, evaluate=evaluate, artifacts=None, grad_accum=data.cycle)


def heldout_report(model: VisualTokenizer, clips: list[AVClip], *, frame_fid: bool = True) -> pl.DataFrame:
    """avtok.eval's video scores (PSNR, SSIM, frame FID) next to the trivial baselines."""
    cfg = ReconstructionConfig(metrics=ClipMetricsConfig(audio=False), frame_fid=frame_fid)
    model.eval()
    return evaluate_reconstruction(VisualReconstructor(model), clips, cfg=cfg).summary
