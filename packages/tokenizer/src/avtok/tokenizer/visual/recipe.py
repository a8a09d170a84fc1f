"""Visual tokenizer recipe (AToken curriculum): concert frames as images (``image_rec``) and 8-frame
windows as videos (``video_rec``), round-robin at the stage's ratio; images get L1 + Inception perceptual +
Gram (``--no-gram`` drops Gram: the ablation), videos L1 only (AToken §3.5), plus KL while latents are
continuous. With ``mel_images`` the clips' log-mels, cut into ``MEL_SECONDS`` windows and drawn as grey
images (``avtok.tokenizer.mel_image``), join as a third task ``audio_rec`` (L1, as often as the most
frequent visual task): one tokenizer, one latent space for frames and sound — the latent codec of the
Ovi-style generator. Held-out windows are scored with ``avtok.eval`` (video metrics; the audio is passed
through) and, with mel images, a held-out log-mel L1."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn import functional as F

from avtok.eval.clip_metrics import ClipMetricsConfig
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip, MelConfig, WindowConfig, log_mel
from avtok.media_io.windows import WindowBatch
from avtok.tokenizer.curriculum import RoundRobinTasks, Stage, available_ratios
from avtok.tokenizer.losses import (
    ATokenLossWeights,
    ImageReconstructionLoss,
    ReconstructionWeights,
    atoken_objective,
    kl_loss,
)
from avtok.tokenizer.mel_image import image_to_mel, mel_to_image
from avtok.tokenizer.recipes import RunConfig, StageHooks, evenly, l1
from avtok.tokenizer.window_data import WindowStream, heldout_windows
from avtok.tokenizer.visual.config import resolve_config
from avtok.tokenizer.visual.model import VisualTokenizer, build_tokenizer
from avtok.tokenizer.visual.reconstruct import VisualReconstructor
from avtok.train.transformer import Block

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl

__all__ = [
    "VisualContext",
    "prepare",
    "load_init",
    "distill_loss",
    "build",
    "hooks",
    "heldout_report",
    "mel_windows",
    "window_configs",
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
    held_out: list[AVClip]
    held_video: Tensor  # (K, T, H, W, 3)
    backbone: object | None
    windows: dict[str, WindowConfig]  # task -> the format of its streamed training windows
    held_mels: Tensor | None = None  # (K', 80, F, 3) (mel_images only)
    teacher: VisualTokenizer | None = None  # frozen initial model (--init): semantic distillation target


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


def window_configs(cfg: RunConfig) -> dict[str, WindowConfig]:
    """Per task: 1-frame windows every other frame (images), 8-frame windows at hop 4 (videos) and, with
    ``mel_images``, ``MEL_SECONDS`` windows at hop ``MEL_SECONDS / 2`` with their log-mel (audio)."""
    side, rate = cfg.image_size, MelConfig().sample_rate
    common = {"fps": VISUAL_FPS, "size": (side, side), "sample_rate": rate, "channels": 1,
              "allow_silent": not cfg.mel_images, "holdout_seconds": cfg.holdout_seconds}
    out = {"image_rec": WindowConfig(window_frames=1, stride_frames=2, **common),
           "video_rec": WindowConfig(window_frames=VIDEO_FRAMES, stride_frames=VIDEO_FRAMES // 2, **common)}
    if cfg.mel_images:
        frames = round(MEL_SECONDS * VISUAL_FPS)
        out["audio_rec"] = WindowConfig(window_frames=frames, stride_frames=frames // 2, mel=MelConfig(),
                                        **{**common, "size": (16, 16)})  # only the audio is used: decode small
    return out


def prepare(cfg: RunConfig) -> VisualContext:
    """Plan the streamed training windows of each task; read the held-out windows (and mels)."""
    windows = window_configs(cfg)
    video = WindowConfig.from_dict({**windows["video_rec"].to_dict(), "stride_frames": None})
    held = evenly([s.clip() for s in heldout_windows(cfg.data, video, holdout_seconds=cfg.holdout_seconds)],
                  cfg.eval_windows)
    held_mels = None
    if cfg.mel_images:
        mel = WindowConfig.from_dict({**windows["audio_rec"].to_dict(), "stride_frames": None})
        samples = heldout_windows(cfg.data, mel, holdout_seconds=cfg.holdout_seconds)
        held_mels = mel_to_image(torch.stack([s.mel for s in samples]))
    backbone = None
    if cfg.perceptual:
        from avtok.tokenizer.perceptual import InceptionFeatureMaps

        backbone = InceptionFeatureMaps()
    teacher = None
    if cfg.init is not None:
        teacher = VisualTokenizer.from_pretrained(cfg.init).eval().requires_grad_(False)
    return VisualContext(teacher=teacher, held_out=held,
                         held_video=torch.stack([w.video_float() for w in held]),
                         backbone=backbone, windows=windows, held_mels=held_mels)


def _task_batch(task: str, windows: WindowBatch) -> Tensor:
    """A task's step batch: images (B, H, W, 3), videos (B, T, H, W, 3) in [-1, 1], mel images (B, 80, F, 3)."""
    if task == "audio_rec":
        return mel_to_image(windows.mel)
    video = torch.stack([c.video_float() for c in windows.clips()])  # (B, T, H, W, 3)
    return video[:, 0] if task == "image_rec" else video


def build(cfg: RunConfig, ctx: VisualContext, stage: Stage) -> VisualTokenizer:
    config = resolve_config(cfg.preset) if ctx.teacher is None else copy.deepcopy(ctx.teacher.config)
    config.use_fsq = stage.use_fsq
    config.__post_init__()
    model = build_tokenizer(config)
    if ctx.teacher is not None:
        load_init(model, ctx.teacher.state_dict(), source=str(cfg.init))
    return model


def load_init(model: VisualTokenizer, state: dict[str, Tensor], *, source: str) -> None:
    """``--init`` weights into ``model``: every tensor present with the same shape (FSQ has no weights)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or wrong:
        raise ValueError(f"--init {source}: does not fit the model (missing {missing[:4]}, shape mismatches "
                         f"{wrong[:3]}); pass a folder of the same architecture")
    model.load_state_dict({k: state[k] for k in own}, strict=True)


def distill_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Semantic feature distillation: ``1 - cos(student, teacher)`` averaged over samples (AToken keeps its
    understanding ability by distilling the image feature against the frozen initial model)."""
    return 1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1).mean()


def hooks(cfg: RunConfig, ctx: VisualContext, model: VisualTokenizer, stage: Stage) -> StageHooks:
    # Without --init no step computes a semantic loss (it needs a teacher / paired text that cannot ship
    # offline): freeze its head so it is not a parameter without gradients (which DDP rejects). With --init
    # the head stays alive, distilled against the frozen initial model's semantic feature.
    distill = ctx.teacher is not None and cfg.distill_weight > 0
    model.semantic.requires_grad_(distill)
    teacher = ctx.teacher.to(next(model.parameters()).device) if distill else None
    ratios = available_ratios(stage.tasks, {"image_rec", "video_rec"})
    if "audio_rec" in ctx.windows:  # audio as mel images, as often as the most frequent visual task
        ratios["audio_rec"] = max(ratios.values())
    batch = {"image_rec": cfg.batch_size, "video_rec": max(1, cfg.batch_size // 4),
             "audio_rec": max(1, cfg.batch_size // 2)}
    sources = {k: WindowStream(cfg.data, ctx.windows[k], batch_size=batch[k], seed=cfg.seed,
                               readers=cfg.data_readers, transform=functools.partial(_task_batch, k),
                               cache_mb=cfg.data_cache_mb)
               for k in ratios}
    data = RoundRobinTasks(sources, ratios)
    weights = ReconstructionWeights(gram=1e3 if cfg.gram else 0.0)
    image_loss = ImageReconstructionLoss(ctx.backbone, weights=weights)
    loss_weights = ATokenLossWeights(sem=cfg.distill_weight)

    def step(net: VisualTokenizer, item: dict) -> dict:
        batch = item["batch"].to(next(net.parameters()).device)
        out, recs = net(list(batch))
        if item["task"] == "image_rec":
            terms = image_loss(recs, list(batch))
        else:  # video and mel images: L1 only
            terms = {"l1": l1(torch.stack(recs), batch)}
            terms["rec"] = terms["l1"]
        kl = kl_loss(out.mean, out.logvar) if out.mean is not None and out.logvar is not None else None
        sem = None
        if teacher is not None and item["task"] != "audio_rec":
            with torch.no_grad():
                target = teacher.encode(list(batch)).semantic  # (B, D) frozen initial image_feat
            sem = distill_loss(out.semantic, target)
        res = atoken_objective(rec=terms["rec"], sem=sem, kl=kl, parts=terms, weights=loss_weights)
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

    stats = sources.get("video_rec") or next(iter(sources.values()))  # the stream that covers every file
    return StageHooks(data=data, step_fn=step, evaluate=evaluate, artifacts=None, grad_accum=data.cycle,
                      data_stats=stats.stats)


def heldout_report(model: VisualTokenizer, clips: list[AVClip], *, frame_fid: bool = True,
                   frame_stride: int = 1) -> pl.DataFrame:
    """avtok.eval's video scores (PSNR, SSIM, frame FID on every ``frame_stride``-th frame) next to the
    trivial baselines."""
    cfg = ReconstructionConfig(metrics=ClipMetricsConfig(audio=False), frame_fid=frame_fid,
                               frame_stride=frame_stride)
    model.eval()
    return evaluate_reconstruction(VisualReconstructor(model), clips, cfg=cfg).summary
