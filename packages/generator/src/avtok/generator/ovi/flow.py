"""Flow matching for the twin DiT: linear interpolant, velocity target, per-modality t and tasks.

Convention (Wan / Ovi): ``x_t = (1 - t)·x0 + t·noise``, t = 1 is pure noise, the model predicts the
velocity ``noise − x0`` and sampling integrates dx/dt from t = 1 down to 0. Loss
``λv·L^v + λa·L^a`` with λv 0.85, λa 0.15 (Ovi §4.2.2). ``t`` is shared by both modalities by default;
``independent_t`` draws one per modality. ``loss_on`` masks the loss to one modality ("video" / "audio",
e.g. new speaker identities from audio only) or keeps both; both towers still run and condition each other.
Tasks: ``t2av`` noises both; ``a2v`` keeps audio at its clean
value (t_audio = 0) and scores only video; ``v2a`` the reverse — one model serves all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from avtok.generator.ovi.config import LatentSpec

__all__ = ["LOSS_ON", "TASKS", "FlowBatch", "FlowLoss", "FlowMatchingConfig", "flow_matching_loss",
           "interpolate"]

TASKS = ("t2av", "a2v", "v2a")
LOSS_ON = ("both", "video", "audio")


@dataclass(kw_only=True)
class FlowMatchingConfig:
    lambda_video: float = 0.85
    lambda_audio: float = 0.15
    independent_t: bool = False
    # probabilities of t2av / a2v / v2a per sample during training (Ovi trains t2av only)
    task_probs: Sequence[float] = field(default_factory=lambda: (1.0, 0.0, 0.0))
    text_dropout: float = 0.1  # replace the text with the null embedding, for classifier-free guidance
    loss_on: str = "both"  # see LOSS_ON

    def __post_init__(self) -> None:
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"FlowMatchingConfig.loss_on={self.loss_on!r}: choose one of {LOSS_ON}")
        p = torch.tensor([float(x) for x in self.task_probs])
        if p.numel() != len(TASKS) or bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-6:
            raise ValueError(
                f"FlowMatchingConfig.task_probs={list(self.task_probs)}: give {len(TASKS)} "
                f"non-negative probabilities for {TASKS} summing to 1"
            )
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError(f"FlowMatchingConfig.text_dropout={self.text_dropout}: use a value in [0, 1)")


@dataclass(kw_only=True)
class FlowBatch:
    """Clean latents plus text: video (B, T', H', W', Cv), audio (B, La, Ca), text (B, Lt, Dt)."""

    video: Tensor
    audio: Tensor
    text: Tensor
    text_mask: Tensor | None = None


@dataclass(kw_only=True)
class FlowLoss:
    loss: Tensor
    video: Tensor
    audio: Tensor

    def as_dict(self) -> dict[str, Tensor]:
        return {"loss": self.loss, "loss_video": self.video.detach(), "loss_audio": self.audio.detach()}


def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """(1 − t)·x0 + t·noise with t (B,) broadcast over the remaining dims."""
    t = t.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - t) * x0 + t * noise


def _timesteps(
    b: int, cfg: FlowMatchingConfig, gen: torch.Generator | None, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    t_v = torch.rand(b, generator=gen, device=device)
    t_a = torch.rand(b, generator=gen, device=device) if cfg.independent_t else t_v.clone()
    probs = torch.tensor([float(x) for x in cfg.task_probs], device=device)
    task = torch.multinomial(probs, b, replacement=True, generator=gen)  # (B,) index into TASKS
    t_a = torch.where(task == 1, torch.zeros_like(t_a), t_a)  # a2v: audio clean
    t_v = torch.where(task == 2, torch.zeros_like(t_v), t_v)  # v2a: video clean
    return t_v, t_a, task


def _one(batch: FlowBatch, i: int) -> FlowBatch:
    return FlowBatch(video=batch.video[i : i + 1], audio=batch.audio[i : i + 1], text=batch.text[i : i + 1])


def _draws(batch: FlowBatch, cfg: FlowMatchingConfig, gen: torch.Generator | None, dev: torch.device):
    """t_v, t_a, task (B,), noise like video / audio, and the text-dropout uniform (B,)."""
    t_v, t_a, task = _timesteps(batch.video.shape[0], cfg, gen, dev)
    n_v = torch.randn(batch.video.shape, generator=gen, device=dev, dtype=batch.video.dtype)
    n_a = torch.randn(batch.audio.shape, generator=gen, device=dev, dtype=batch.audio.dtype)
    return t_v, t_a, task, n_v, n_a, torch.rand(batch.video.shape[0], generator=gen, device=dev)


def _mse(pred: Tensor, target: Tensor, keep: Tensor) -> Tensor:
    per = (pred.float() - target.float()).pow(2).flatten(1).mean(1)  # (B,)
    return (per * keep).sum() / keep.sum().clamp_min(1.0)


def flow_matching_loss(
    model: nn.Module,
    batch: FlowBatch,
    cfg: FlowMatchingConfig | None = None,
    *,
    null_text: Tensor | None = None,
    null_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    spec: LatentSpec | None = None,
    sample_seeds: Tensor | None = None,
) -> FlowLoss:
    """Weighted per-modality velocity MSE; a modality held clean (a2v / v2a) is not scored.

    ``null_text`` (1, Lt, Dt) with ``null_mask`` (1, Lt) replaces a sample's text with probability
    ``cfg.text_dropout`` (e.g. the padded embedding of the negative / empty prompt). ``sample_seeds`` (B,)
    seeds each sample's t, task, noise and dropout draw (multi-rank runs equal one process).
    """
    cfg = cfg or FlowMatchingConfig()
    dev = batch.video.device
    if sample_seeds is None:
        t_v, t_a, task, n_v, n_a, u = _draws(batch, cfg, generator, dev)
    else:  # one generator per sample: the same draws however the batch is split over ranks
        per = [_draws(_one(batch, i), cfg, torch.Generator().manual_seed(int(s)), torch.device("cpu"))
               for i, s in enumerate(sample_seeds.tolist())]
        t_v, t_a, task, n_v, n_a, u = (torch.cat(x).to(dev) for x in zip(*per, strict=True))
    text, mask = batch.text, batch.text_mask
    if null_text is not None and cfg.text_dropout > 0:
        drop = u < cfg.text_dropout  # (B,)
        text = torch.where(drop[:, None, None], null_text.expand_as(text), text)
        if mask is not None:
            null_mask = torch.ones_like(mask[:1]) if null_mask is None else null_mask
            mask = torch.where(drop[:, None], null_mask.expand_as(mask), mask)
    out = model(
        interpolate(batch.video, n_v, t_v),
        interpolate(batch.audio, n_a, t_a),
        t_v,
        t_a,
        text,
        text_mask=mask,
        spec=spec,
    )
    loss_v = _mse(out.video, n_v - batch.video, (task != 2).float())
    loss_a = _mse(out.audio, n_a - batch.audio, (task != 1).float())
    weights = {"both": (cfg.lambda_video, cfg.lambda_audio), "video": (1.0, 0.0), "audio": (0.0, 1.0)}
    w_v, w_a = weights[cfg.loss_on]
    return FlowLoss(loss=w_v * loss_v + w_a * loss_a, video=loss_v, audio=loss_a)
