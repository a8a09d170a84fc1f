"""Sampling the twin DiT: tasks (t2av / a2v / v2a), per-modality CFG with negative prompts, seeds, batches.

Guidance (Ovi): one conditional pass with the combined prompt for both towers, one unconditional pass
with the *video* negative prompt in the video tower and the *audio* negative prompt in the audio tower;
``v = v_neg + scale·(v_cond − v_neg)`` per modality. A scale of 1 for both skips the negative pass. In
a2v / v2a the given modality is held at its clean latent (its t is 0 in every call) and returned as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avtok.generator.ovi.config import LatentSpec
from avtok.generator.ovi.flow import TASKS
from avtok.generator.ovi.solvers import euler, sigma_grid, unipc
from avtok.generator.ovi.twin_dit import TwinDiT, TwinOutput

__all__ = [
    "SOLVERS",
    "SampleResult",
    "SamplerConfig",
    "TextCondition",
    "guided_velocity",
    "initial_noise",
    "sample",
]

SOLVERS = {"euler": euler, "unipc": unipc}


@dataclass(kw_only=True)
class SamplerConfig:
    steps: int = 50
    solver: str = "unipc"
    shift: float = 5.0
    cfg_video: float = 4.0
    cfg_audio: float = 3.0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"SamplerConfig.solver={self.solver!r}: choose one of {sorted(SOLVERS)}")
        if self.steps < 1 or self.shift <= 0:
            raise ValueError(f"SamplerConfig: steps={self.steps} must be >= 1 and shift={self.shift} > 0")


@dataclass(kw_only=True)
class TextCondition:
    """Text embeddings (B, Lt, Dt) with masks (B, Lt) bool: the prompt and the per-modality negatives."""

    text: Tensor
    mask: Tensor | None = None
    negative_video: Tensor | None = None
    negative_video_mask: Tensor | None = None
    negative_audio: Tensor | None = None
    negative_audio_mask: Tensor | None = None


@dataclass(kw_only=True)
class SampleResult:
    video: Tensor  # (B, T', H', W', Cv)
    audio: Tensor  # (B, La, Ca)
    task: str


def initial_noise(
    spec: LatentSpec,
    seeds: list[int],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Per-sample seeded noise, so sample i is the same whether drawn alone or in a batch."""
    vids, auds = [], []
    for seed in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        vids.append(torch.randn(spec.video_shape(1)[1:], generator=g))
        auds.append(torch.randn(spec.audio_shape(1)[1:], generator=g))
    return torch.stack(vids).to(device, dtype), torch.stack(auds).to(device, dtype)


def _combine(cond: Tensor, neg: Tensor, scale: float) -> Tensor:
    return neg + scale * (cond - neg)


def guided_velocity(
    model: TwinDiT,
    video: Tensor,
    audio: Tensor,
    sigma: float,
    task: str,
    text: TextCondition,
    cfg: SamplerConfig,
    spec: LatentSpec | None = None,
) -> TwinOutput:
    """The CFG-combined velocity of both towers at noise level ``sigma`` for ``task``."""
    b = video.shape[0]
    t = torch.full((b,), float(sigma), device=video.device)
    t_v = torch.zeros_like(t) if task == "v2a" else t
    t_a = torch.zeros_like(t) if task == "a2v" else t
    cond = model(video, audio, t_v, t_a, text.text, text_mask=text.mask, spec=spec)
    if cfg.cfg_video == 1.0 and cfg.cfg_audio == 1.0:
        return cond
    if text.negative_video is None or text.negative_audio is None:
        raise ValueError(
            "guided_velocity: CFG scales != 1 need TextCondition.negative_video and "
            "negative_audio (encode the negative prompts, or '' for the null prompt)"
        )
    neg = model(
        video,
        audio,
        t_v,
        t_a,
        text.negative_video,
        text_mask=text.negative_video_mask,
        text_audio=text.negative_audio,
        text_mask_audio=text.negative_audio_mask,
        spec=spec,
    )
    return TwinOutput(
        video=_combine(cond.video, neg.video, cfg.cfg_video),
        audio=_combine(cond.audio, neg.audio, cfg.cfg_audio),
    )


@torch.no_grad()
def sample(
    model: TwinDiT,
    spec: LatentSpec,
    text: TextCondition,
    *,
    task: str = "t2av",
    cfg: SamplerConfig | None = None,
    seeds: list[int] | None = None,
    video: Tensor | None = None,
    audio: Tensor | None = None,
) -> SampleResult:
    """Integrate the flow ODE from noise (t = 1) to latents (t = 0) for a batch of B = len(text.text).

    ``a2v`` needs ``audio`` (B, La, Ca) clean latents, ``v2a`` needs ``video`` (B, T', H', W', Cv).
    """
    cfg = cfg or SamplerConfig()
    if task not in TASKS:
        raise ValueError(f"sample: task={task!r}; choose one of {TASKS}")
    b = text.text.shape[0]
    seeds = list(range(b)) if seeds is None else list(seeds)
    if len(seeds) != b:
        raise ValueError(f"sample: {len(seeds)} seeds for a batch of {b} prompts; give one seed per prompt")
    dev = text.text.device
    x_v, x_a = initial_noise(spec, seeds, device=dev, dtype=text.text.dtype)
    if task == "a2v":
        x_a = _given(audio, x_a.shape, "audio", "a2v")
    if task == "v2a":
        x_v = _given(video, x_v.shape, "video", "v2a")

    def velocity(xs: list[Tensor], sigma: float) -> list[Tensor]:
        out = guided_velocity(model, xs[0], xs[1], sigma, task, text, cfg, spec)
        zero = torch.zeros_like  # the given modality does not move
        return [
            zero(out.video) if task == "v2a" else out.video,
            zero(out.audio) if task == "a2v" else out.audio,
        ]

    xs = SOLVERS[cfg.solver](velocity, [x_v, x_a], sigma_grid(cfg.steps, cfg.shift))
    if task == "a2v":
        xs[1] = x_a  # exactly the input, not a round-off copy
    if task == "v2a":
        xs[0] = x_v
    return SampleResult(video=xs[0], audio=xs[1], task=task)


def _given(x: Tensor | None, shape: torch.Size, name: str, task: str) -> Tensor:
    if x is None or tuple(x.shape) != tuple(shape):
        got = None if x is None else tuple(x.shape)
        raise ValueError(
            f"sample: task {task} needs clean {name} latents of shape {tuple(shape)}, got {got}; "
            f"encode the input clip with the tokenizer first"
        )
    return x
