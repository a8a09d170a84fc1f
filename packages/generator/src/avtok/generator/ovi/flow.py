"""Flow matching for the twin DiT: linear interpolant, velocity target, per-modality t and tasks.

Convention (Wan / Ovi): ``x_t = (1 - t)·x0 + t·noise``, t = 1 is pure noise, the model predicts the
velocity ``noise − x0`` and sampling integrates dx/dt from t = 1 down to 0. Loss
``λv·L^v + λa·L^a`` with λv 0.85, λa 0.15 (Ovi §4.2.2). ``t`` is shared by both modalities by default;
``independent_t`` draws one per modality. Tasks: ``t2av`` noises both; ``a2v`` keeps audio at its clean
value (t_audio = 0) and scores only video; ``v2a`` the reverse — one model serves all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from avtok.generator.ovi.config import LatentSpec

__all__ = ["TASKS", "FlowBatch", "FlowLoss", "FlowMatchingConfig", "flow_matching_loss", "interpolate"]

TASKS = ("t2av", "a2v", "v2a")


@dataclass(kw_only=True)
class FlowMatchingConfig:
    lambda_video: float = 0.85
    lambda_audio: float = 0.15
    independent_t: bool = False
    # probabilities of t2av / a2v / v2a per sample during training (Ovi trains t2av only)
    task_probs: Sequence[float] = field(default_factory=lambda: (1.0, 0.0, 0.0))
    text_dropout: float = 0.1  # replace the text with the null embedding, for classifier-free guidance

    def __post_init__(self) -> None:
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
) -> FlowLoss:
    """Weighted per-modality velocity MSE; a modality held clean (a2v / v2a) is not scored.

    ``null_text`` (1, Lt, Dt) with ``null_mask`` (1, Lt) replaces a sample's text with probability
    ``cfg.text_dropout`` (e.g. the padded embedding of the negative / empty prompt).
    """
    cfg = cfg or FlowMatchingConfig()
    b, dev = batch.video.shape[0], batch.video.device
    t_v, t_a, task = _timesteps(b, cfg, generator, dev)
    n_v = torch.randn(batch.video.shape, generator=generator, device=dev, dtype=batch.video.dtype)
    n_a = torch.randn(batch.audio.shape, generator=generator, device=dev, dtype=batch.audio.dtype)
    text, mask = batch.text, batch.text_mask
    if null_text is not None and cfg.text_dropout > 0:
        drop = torch.rand(b, generator=generator, device=dev) < cfg.text_dropout  # (B,)
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
    return FlowLoss(loss=cfg.lambda_video * loss_v + cfg.lambda_audio * loss_a, video=loss_v, audio=loss_a)
