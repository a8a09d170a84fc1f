"""AV tokenizer recipe: concert windows → (video, normalised mel) pairs, VFAL / vanilla step functions,
held-out metrics and artifacts (frame strip, spectrograms, mp4) through ``avtok.eval``.

Losses per step (``avtok_objective``; AVTok gives no weights, the choices are ours):

- video: L1 over every frame at native resolution; with ``RunConfig.perceptual`` also the Inception
  perceptual distance (×10) and Gram loss (×1e3, ``RunConfig.gram``) — AToken's within-reconstruction
  weights — on one random frame per window at the backbone's resolution (all frames would cost ×T);
- audio (stages that see audio): L1 of the normalised log-mel; with ``RunConfig.mrstft`` the
  multi-resolution STFT loss between the real waveform and the HiFi-GAN vocoding of the reconstructed mel
  (gradients flow through the frozen vocoder);
- AR prior: next-token cross-entropy of the tokenizer's small causal prior over the token sequence, weight
  ``RunConfig.ar_prior_weight`` (0.01; 0 turns it off). The prior trains in every stage; its loss also
  reaches the encoder through the FSQ straight-through codes (LARP's design). LARP's 0.06 made `tiny`'s
  tokens 1.2 nats/token easier to predict but cost 1.1 dB of held-out video PSNR after 10k video steps;
  0.01 costs nothing measurable and keeps the prior trained (package README, "Why the AR-prior weight");
- representation alignment (with ``RunConfig.align_teacher``, weight 1): ``1 - cos`` between the
  alignment head's projection of the continuous tokens and a frozen audio-visual teacher's features
  (``AVTokenizer.align_loss``; video features in every stage, audio ones where audio is encoded). No such
  teacher ships offline: pass a local TorchScript file whose ``forward(video, wave)`` takes video
  ``(B, T, H, W, 3)`` in [-1, 1] and mono 22.05 kHz audio ``(B, samples)`` and returns
  ``(video_features, audio_features)``, each ``(B, F)`` or ``(B, N_m, F)`` with ``F`` = the preset's
  ``align_dim`` (32 for tiny). Without it the alignment head stays frozen.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from avtok.eval.artifacts import frame_strip_png, short_mp4, spectrogram_png
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip, WindowConfig, log_mel
from avtok.media_io.windows import WindowBatch
from avtok.tokenizer.av.clip import AVClipReconstructor, clip_wave
from avtok.tokenizer.av.config import MEL, resolve_av_config
from avtok.tokenizer.av.heads import AlignHead, ARPrior
from avtok.tokenizer.av.model import AVTokenizer, build_av_tokenizer
from avtok.tokenizer.curriculum import RoundRobinTasks, Stage
from avtok.tokenizer.losses import (
    AVTokLossWeights,
    ImageReconstructionLoss,
    ReconstructionWeights,
    ar_prior_loss,
    avtok_objective,
    load_teacher,
    mrstft_loss,
)
from avtok.tokenizer.recipes import RunConfig, StageHooks, evenly, l1
from avtok.tokenizer.window_data import WindowStream, heldout_windows, join_windows, sample_windows
from avtok.train.distributed import unwrap
from avtok.train.transformer import Block

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl

__all__ = ["AVContext", "AVLosses", "SHARD_MODULES", "prepare", "build", "hooks", "heldout_report",
           "window_config", "window_tensors"]
log = logging.getLogger("avtok.training")

# FSDP2 units under --strategy fsdp2: the transformer blocks, and the AR prior and alignment head because
# the step calls them outside the tokenizer's forward (a unit gathers its own parameters when called).
SHARD_MODULES = (Block, ARPrior, AlignHead)


MEL_STAT_WINDOWS = 64  # training windows whose log-mels set the model's per-bin mel range


@dataclass(kw_only=True)
class AVContext:
    train_mel: Tensor  # (N, 80, F) log-mel of up to MEL_STAT_WINDOWS training windows (the mel statistics)
    held_out: list[AVClip]  # held-out windows at the model's fps / size
    held_video: Tensor
    held_mel: Tensor
    window: WindowConfig | None = None  # the training windows' format (streamed from RunConfig.data)
    backbone: nn.Module | None = None  # Inception feature maps for the perceptual / Gram terms
    teacher: nn.Module | None = None  # frozen audio-visual teacher for representation alignment
    held_clips: list[AVClip] = field(default_factory=list)  # each file's whole held-out tail (≥ 1 window)


def window_tensors(clips: list[AVClip], num_samples: int) -> tuple[Tensor, Tensor, Tensor]:
    """Windows → video ``(N, T, H, W, 3)`` in [-1, 1], mono wave ``(N, samples)`` and log-mel
    ``(N, 80, F)`` at 22.05 kHz."""
    video = torch.stack([c.video_float() for c in clips])
    waves = torch.stack([clip_wave(c, num_samples) for c in clips])  # (N, samples)
    return video, waves, log_mel(waves, MEL)


def window_config(cfg: RunConfig, *, stride_frames: int | None = None) -> WindowConfig:
    """The preset's windows (fps, size, 22.05 kHz mono audio) with the run's hold-out; audio is required."""
    c = resolve_av_config(cfg.preset)
    return WindowConfig(window_frames=c.frames, fps=c.fps, size=(c.height, c.width), resize_mode="crop",
                        sample_rate=MEL.sample_rate, channels=1, stride_frames=stride_frames,
                        holdout_seconds=cfg.holdout_seconds)


def prepare(cfg: RunConfig) -> AVContext:
    """Plan the streamed training windows (hop = half a window), read the mel-statistics sample and the
    held-out windows (the last ``holdout_seconds`` of every file, consecutive windows)."""
    c = resolve_av_config(cfg.preset)
    train = window_config(cfg, stride_frames=max(1, c.frames // 2))
    stat = sample_windows(cfg.data, train, count=MEL_STAT_WINDOWS, seed=cfg.seed)
    held = heldout_windows(cfg.data, window_config(cfg), holdout_seconds=cfg.holdout_seconds)
    held_w = evenly([s.clip() for s in held], cfg.eval_windows)
    _, _, tm = window_tensors([s.clip() for s in stat], c.num_samples)
    hv, _, hm = window_tensors(held_w, c.num_samples)
    backbone = None
    if cfg.perceptual:
        from avtok.tokenizer.perceptual import InceptionFeatureMaps

        backbone = InceptionFeatureMaps()
    return AVContext(train_mel=tm, held_out=held_w, held_video=hv, held_mel=hm, window=train,
                     backbone=backbone, teacher=load_align_teacher(cfg.align_teacher),
                     held_clips=join_windows(held) if cfg.holdout_seconds > 0 else [])


def load_align_teacher(path: str | Path | None) -> nn.Module | None:
    """The frozen TorchScript teacher of the alignment term (see the module docstring); None: no term.

    A TorchScript archive is executable code (``torch.jit.load`` runs the graph it holds), not weights: the
    teacher's architecture is the user's choice, so no state-dict path exists here; pass only a file you
    exported yourself or trust. The load logs that it runs code from the file.
    """
    if path is None:
        return None
    log.warning("--align-teacher %s: loading a TorchScript file runs the code it contains; use only files "
                "you "
                "exported yourself or trust", path)
    return load_teacher(path)  # RunConfig checked that the file exists


def build(cfg: RunConfig, ctx: AVContext, stage: Stage) -> AVTokenizer:
    config = resolve_av_config(cfg.preset)
    if cfg.ar_prior_weight == 0 and config.prior is not None:
        config = dataclasses.replace(config, prior=None)  # no AR-prior loss: carry no untrained prior
    model = build_av_tokenizer(config)
    model.fit_mel_stats(ctx.train_mel)  # per-bin range of the training mels (saved with the weights)
    return model


def _usage(model: AVTokenizer, indices: Tensor) -> float:
    return float(indices.unique().numel()) / model.config.codebook_size


@dataclass(kw_only=True)
class AVLosses:
    """The loss terms a run computes (see the module docstring); built once per stage by :func:`hooks`."""

    image: ImageReconstructionLoss | None = None  # perceptual + Gram on one frame per window
    teacher: nn.Module | None = None  # frozen (video, wave) -> (video, audio) features
    vocoder: nn.Module | None = None  # HiFi-GAN generator (frozen) for the MR-STFT term
    ar_prior_weight: float = 0.0

    def video_terms(self, rec: Tensor, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``(video loss, its parts for logging)``; the parts are empty when the loss is L1 alone."""
        total = l1(rec, video)
        if self.image is None:
            return total, {}
        parts = {"video_l1": total}
        pick = torch.randint(video.shape[1], (video.shape[0],))  # one frame per window (checkpointed RNG)
        rows = torch.arange(video.shape[0])
        feat = self.image(rec[rows, pick], video[rows, pick])
        for k in ("perceptual", "gram"):
            if k in feat:
                parts[f"video_{k}"] = feat[k]
                total = total + getattr(self.image.weights, k) * feat[k]
        return total, parts

    def mrstft(self, model: AVTokenizer, rec_mel: Tensor, wave: Tensor) -> Tensor:
        log_mel_rec = model.denormalize_mel(rec_mel.float())
        return mrstft_loss(self.vocoder(log_mel_rec).squeeze(1), wave)


def _step(model: AVTokenizer, item: dict, *, losses: AVLosses) -> dict[str, Tensor | float]:
    """One micro-step; ``model`` may be the runtime's DDP wrapper: call it, read attributes off ``unwrap``."""
    batch = item["batch"]
    dev = next(model.parameters()).device
    video, mel = batch["video"].to(dev), batch["mel"].to(dev)
    net = unwrap(model)
    with_audio = item["task"] != "video"
    needs_wave = losses.teacher is not None or (with_audio and losses.vocoder is not None)
    wave = batch["wave"].to(dev) if needs_wave else None  # moved once for the MR-STFT and the teacher
    tokens, rec = model(video=video, mel=mel if with_audio else None)
    video_loss, parts = losses.video_terms(rec.video, video)
    kw = {"video": video_loss}
    if with_audio:
        kw["audio_mel"] = l1(rec.mel, mel)
        if losses.vocoder is not None:
            kw["audio_stft"] = losses.mrstft(net, rec.mel, wave)
    if losses.teacher is not None:
        with torch.no_grad():
            feats_v, feats_a = losses.teacher(video, wave)
        kw["align"] = net.align_loss(tokens, video=feats_v, audio=feats_a if with_audio else None)
    if losses.ar_prior_weight > 0 and net.prior is not None:
        kw["ar_prior"] = ar_prior_loss(net.prior_logits(tokens), tokens.indices)
    out = avtok_objective(**kw, weights=AVTokLossWeights(ar_prior=losses.ar_prior_weight))
    out.update(parts)
    out["codebook_usage"] = _usage(net, tokens.indices)
    return out


def _losses(cfg: RunConfig, ctx: AVContext, model: AVTokenizer, stage: Stage) -> AVLosses:
    image = None
    if ctx.backbone is not None:
        weights = ReconstructionWeights(l1=0.0, gram=1e3 if cfg.gram else 0.0)  # L1 is over all frames
        image = ImageReconstructionLoss(ctx.backbone, weights=weights)
    vocoder = None
    if cfg.mrstft and "av" in stage.tasks:
        from avtok.media_io.vocoder import load_vocoder

        vocoder = load_vocoder(next(model.parameters()).device).generator
        vocoder.requires_grad_(False)
    return AVLosses(image=image, vocoder=vocoder, teacher=ctx.teacher, ar_prior_weight=cfg.ar_prior_weight)


def hooks(cfg: RunConfig, ctx: AVContext, model: AVTokenizer, stage: Stage) -> StageHooks:
    if ctx.teacher is not None:  # the alignment head trains (x1) in every stage that has a teacher
        if model.align_head is None:
            raise ValueError(f"--align-teacher: preset {cfg.preset!r} has no alignment head (align_dim=None)")
        model.align_head.requires_grad_(True)
    num_samples = model.config.num_samples

    def to_batch(windows: WindowBatch) -> dict[str, Tensor]:  # per-window tensors, computed per batch
        video, wave, mel = window_tensors(windows.clips(), num_samples)
        with torch.no_grad():
            mel = model.normalize_mel(mel.to(model.to_latent.weight.device)).cpu()
        return {"video": video, "mel": mel, "wave": wave}

    stream = WindowStream(cfg.data, ctx.window, batch_size=cfg.batch_size, seed=cfg.seed,
                          readers=cfg.data_readers, transform=to_batch, cache_mb=cfg.data_cache_mb)
    task = next(iter(stage.tasks))
    data = RoundRobinTasks({task: stream}, {task: 1})
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

    step = functools.partial(_step, losses=_losses(cfg, ctx, model, stage))
    return StageHooks(data=data, step_fn=step, evaluate=evaluate, artifacts=artifacts, grad_accum=data.cycle,
                      data_stats=stream.stats)


def heldout_report(
    model: AVTokenizer, clips: list[AVClip], *, frame_fid: bool = True, frame_stride: int = 1
) -> pl.DataFrame:
    """avtok.eval's reconstruction summary of ``model`` next to the trivial baselines (one row each).

    ``clips``: model windows (``AVContext.held_out``) or longer clips such as ``AVContext.held_clips``,
    reconstructed window by window; the baselines see each clip whole (its own mean / first frame).
    ``frame_stride``: frame FID on every ``frame_stride``-th frame.
    """
    cfg = ReconstructionConfig(frame_fid=frame_fid, frame_stride=frame_stride,
                               codebook_size=model.config.codebook_size)
    model.eval()
    return evaluate_reconstruction(AVClipReconstructor(model), clips, cfg=cfg).summary
