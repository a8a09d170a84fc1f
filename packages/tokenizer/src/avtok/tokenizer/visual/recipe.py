"""Visual tokenizer recipe (AToken curriculum): concert frames as images (``image_rec``) and 8-frame
windows as videos (``video_rec``), round-robin at the stage's ratio; images get L1 + Inception perceptual +
Gram (``--no-gram`` drops Gram: the ablation), videos L1 only (AToken §3.5), plus KL while latents are
continuous. With ``mel_images`` the clips' log-mels, cut into ``MEL_SECONDS`` windows and drawn as grey
images (``avtok.tokenizer.mel_image``), join as a third task ``audio_rec`` (L1, as often as the most
frequent visual task): one tokenizer, one latent space for frames and sound — the latent codec of the
Ovi-style generator. Held-out windows are scored with ``avtok.eval`` (video metrics; the audio is passed
through) and, with mel images, a held-out log-mel L1."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import torch
from torch import Tensor

from avtok.eval.clip_metrics import ClipMetricsConfig
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip, MelConfig, log_mel
from avtok.tokenizer.curriculum import RoundRobinTasks, Stage, available_ratios
from avtok.tokenizer.losses import (
    ImageReconstructionLoss,
    ReconstructionWeights,
    atoken_objective,
    kl_loss,
)
from avtok.tokenizer.mel_image import image_to_mel, mel_to_image
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
from avtok.tokenizer.visual.config import resolve_config
from avtok.tokenizer.visual.model import VisualTokenizer, build_tokenizer
from avtok.tokenizer.visual.reconstruct import VisualReconstructor
from avtok.train.transformer import Block

__all__ = [
    "VisualContext",
    "prepare",
    "build",
    "hooks",
    "heldout_report",
    "mel_windows",
    "VISUAL_FPS",
    "VIDEO_FRAMES",
    "MEL_SECONDS",
    "SHARD_MODULES",
]

SHARD_MODULES = (Block,)  # FSDP2 units under --strategy fsdp2
VISUAL_FPS = 8.0  # frames per second read for the visual tokenizer (more distinct frames per second)
VIDEO_FRAMES = 8  # frames per video sample (2 latent frames with the 4-frame patch)
MEL_SECONDS = 2.0  # seconds of audio per mel-image sample (172 mel frames at 22.05 kHz, hop 256)


@dataclass(kw_only=True)
class VisualContext:
    images: Tensor  # (N, H, W, 3) in [-1, 1]
    videos: Tensor  # (M, T, H, W, 3)
    held_out: list[AVClip]
    held_video: Tensor  # (K, T, H, W, 3)
    backbone: object | None
    mels: Tensor | None = None  # (M', 80, F, 3) mel images of the training span (mel_images only)
    held_mels: Tensor | None = None  # (K', 80, F, 3)


def mel_windows(clip: AVClip, *, seconds: float = MEL_SECONDS, hop_seconds: float | None = None) -> Tensor:
    """Mel images ``(N, 80, F, 3)`` of consecutive ``seconds`` windows of a 22.05 kHz clip's audio."""
    mel_cfg = MelConfig()
    if clip.sample_rate != mel_cfg.sample_rate:
        raise ValueError(f"mel_windows: {clip.source} audio is at {clip.sample_rate} Hz; read it at "
                         f"{mel_cfg.sample_rate} Hz (the vocoder's rate)")
    frames = int(seconds * mel_cfg.sample_rate) // mel_cfg.hop_length
    hop = frames if hop_seconds is None else int(hop_seconds * mel_cfg.sample_rate) // mel_cfg.hop_length
    if clip.audio.shape[1] <= mel_cfg.pad:
        return torch.empty(0, mel_cfg.n_mels, frames, 3)
    mel = log_mel(clip.audio.mean(0), mel_cfg)  # (80, F_total)
    starts = range(0, mel.shape[1] - frames + 1, hop)
    if not starts:
        return torch.empty(0, mel_cfg.n_mels, frames, 3)
    return mel_to_image(torch.stack([mel[:, s : s + frames] for s in starts]))


def prepare(cfg: RunConfig) -> VisualContext:
    side = cfg.image_size
    vids, held, mels, held_mels = [], [], [], []
    audio = {"sample_rate": MelConfig().sample_rate, "channels": 1} if cfg.mel_images else {}
    for clip in load_media(resolve_data(cfg.data), fps=VISUAL_FPS, size=(side, side), **audio):
        train, tail = split_holdout(clip, cfg.holdout_seconds)
        vids += windows(train, VIDEO_FRAMES, VIDEO_FRAMES // 2)
        if tail is not None:
            held += windows(tail, VIDEO_FRAMES, VIDEO_FRAMES)
        if cfg.mel_images:
            mels.append(mel_windows(train, hop_seconds=MEL_SECONDS / 2))
            if tail is not None:
                held_mels.append(mel_windows(tail))
    if not vids:
        raise ValueError(f"--data {cfg.data}: no {VIDEO_FRAMES}-frame window left after the hold-out")
    videos = torch.stack([w.video_float() for w in vids])  # (M, T, H, W, 3)
    images = videos[:, ::2].flatten(0, 1)  # every other frame as an image sample
    held = evenly(held or vids[-1:], cfg.eval_windows)
    backbone = None
    if cfg.perceptual:
        from avtok.tokenizer.perceptual import InceptionFeatureMaps

        backbone = InceptionFeatureMaps()
    mel_train = torch.cat(mels) if mels else None
    if cfg.mel_images and (mel_train is None or len(mel_train) == 0):
        raise ValueError(f"--data {cfg.data}: no {MEL_SECONDS:g} s audio window for --mel-images")
    held_mel = torch.cat(held_mels) if held_mels else None
    if cfg.mel_images and (held_mel is None or not len(held_mel)):
        held_mel = mel_train[-1:]  # no held-out audio (--holdout-seconds 0): score the last training window
    return VisualContext(
        images=images,
        videos=videos,
        held_out=held,
        held_video=torch.stack([w.video_float() for w in held]),
        backbone=backbone,
        mels=mel_train,
        held_mels=held_mel,
    )


def build(cfg: RunConfig, ctx: VisualContext, stage: Stage) -> VisualTokenizer:
    config = resolve_config(cfg.preset)
    config.use_fsq = stage.use_fsq
    config.__post_init__()
    return build_tokenizer(config)


def hooks(cfg: RunConfig, ctx: VisualContext, model: VisualTokenizer, stage: Stage) -> StageHooks:
    # No step computes the semantic loss (it needs a frozen teacher / paired text that cannot ship offline):
    # freeze its head so it is not a parameter without gradients (which DDP rejects).
    model.semantic.requires_grad_(False)
    ratios = available_ratios(stage.tasks, {"image_rec", "video_rec"})
    sources = {
        "image_rec": batch_loader(list(ctx.images), batch_size=cfg.batch_size, seed=cfg.seed),
        "video_rec": batch_loader(list(ctx.videos), batch_size=max(1, cfg.batch_size // 4), seed=cfg.seed),
    }
    if ctx.mels is not None:  # audio as mel images, as often as the most frequent visual task
        ratios["audio_rec"] = max(ratios.values())
        sources["audio_rec"] = batch_loader(list(ctx.mels), batch_size=max(1, cfg.batch_size // 2),
                                            seed=cfg.seed)
    data = RoundRobinTasks({k: sources[k] for k in ratios}, ratios)
    weights = ReconstructionWeights(gram=1e3 if cfg.gram else 0.0)
    image_loss = ImageReconstructionLoss(ctx.backbone, weights=weights)

    def step(net: VisualTokenizer, item: dict) -> dict:
        batch = item["batch"].to(next(net.parameters()).device)
        out, recs = net(list(batch))
        if item["task"] == "image_rec":
            terms = image_loss(recs, list(batch))
        else:  # video and mel images: L1 only
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
        out = {"loss": float(l1(rec, v)), "video_psnr": float(10 * torch.log10(4 / mse))}
        if ctx.held_mels is not None:
            m = ctx.held_mels.to(v.device)
            _, mel_recs = net(list(m))
            out["mel_l1"] = float(l1(image_to_mel(torch.stack(mel_recs)), image_to_mel(m)))  # log-mel units
        return out

    return StageHooks(data=data, step_fn=step, evaluate=evaluate, artifacts=None, grad_accum=data.cycle)


def heldout_report(model: VisualTokenizer, clips: list[AVClip], *, frame_fid: bool = True) -> pl.DataFrame:
    """avtok.eval's video scores (PSNR, SSIM, frame FID) next to the trivial baselines."""
    cfg = ReconstructionConfig(metrics=ClipMetricsConfig(audio=False), frame_fid=frame_fid)
    model.eval()
    return evaluate_reconstruction(VisualReconstructor(model), clips, cfg=cfg).summary
