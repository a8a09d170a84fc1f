"""Sampling the twin DiT: tasks (t2av / i2v / a2v / v2a), per-modality CFG with negative prompts, seeds.

Guidance (Ovi's loop): one conditional pass with the combined prompt for both towers, one negative pass
with the *video* negative prompt in the video tower, the *audio* negative prompt in the audio tower and
skip-layer guidance (``slg_layer``: that fusion block skipped in both towers);
``v = v_neg + scale·(v_cond − v_neg)`` per modality. A scale of 1 for both skips the negative pass. The
schedule is Ovi's (:func:`~avtok.generator.ovi.solvers.ovi_schedule`): the model sees t = timestep / 1000.
i2v: video latent frame 0 is the given image latent before every model call (its tokens get t = 0) and in
the result. In a2v / v2a the given modality is held at its clean latent (its t is 0 in every call) and
returned as is. Initial noise per sample as Ovi draws it: video ``randn(C, F, H, W)`` from a generator
seeded with the seed, audio ``randn(L, C)`` from a fresh generator with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avtok.generator.ovi.config import LatentSpec
from avtok.generator.ovi.flow import TASKS
from avtok.generator.ovi.solvers import euler, ovi_schedule, unipc
from avtok.generator.ovi.twin_dit import TwinDiT, TwinOutput

__all__ = [
    "SAMPLE_TASKS",
    "SOLVERS",
    "SampleResult",
    "SamplerConfig",
    "TextCondition",
    "guided_velocity",
    "initial_noise",
    "sample",
]

SOLVERS = {"euler": euler, "unipc": unipc}
SAMPLE_TASKS = (*TASKS, "i2v")


@dataclass(kw_only=True)
class SamplerConfig:
    steps: int = 50
    solver: str = "unipc"
    shift: float = 5.0
    cfg_video: float = 4.0
    cfg_audio: float = 3.0
    # fusion block skipped on the negative pass (Ovi's config: 11); None or 0 = off, as in Ovi (slg_layer > 0)
    slg_layer: int | None = None

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
    """Per-sample seeded noise drawn as Ovi draws it -> video (B, T', H', W', Cv), audio (B, La, Ca)."""
    vids, auds = [], []
    for seed in seeds:
        _, f, h, w, c = spec.video_shape(1)
        vid = torch.randn((c, f, h, w), generator=torch.Generator().manual_seed(int(seed)))
        vids.append(vid.permute(1, 2, 3, 0))
        auds.append(torch.randn(spec.audio_shape(1)[1:], generator=torch.Generator().manual_seed(int(seed))))
    return torch.stack(vids).to(device, dtype), torch.stack(auds).to(device, dtype)


def _combine(cond: Tensor, neg: Tensor, scale: float) -> Tensor:
    return neg + scale * (cond - neg)


def guided_velocity(
    model: TwinDiT,
    video: Tensor,
    audio: Tensor,
    t: float,
    task: str,
    text: TextCondition,
    cfg: SamplerConfig,
    spec: LatentSpec | None = None,
) -> TwinOutput:
    """The CFG-combined velocity of both towers at model time ``t`` (float64 timestep / 1000) for ``task``."""
    b = video.shape[0]
    tt = torch.full((b,), float(t), device=video.device, dtype=torch.float64)
    t_v = torch.zeros_like(tt) if task == "v2a" else tt
    t_a = torch.zeros_like(tt) if task == "a2v" else tt
    common = {"spec": spec, "first_frame_clean": task == "i2v"}
    cond = model(video, audio, t_v, t_a, text.text, text_mask=text.mask, **common)
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
        skip_block=cfg.slg_layer if cfg.slg_layer else None,  # Ovi skips only for slg_layer > 0
        **common,
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
    image: Tensor | None = None,
) -> SampleResult:
    """Integrate the flow ODE from noise to latents for a batch of B = len(text.text).

    ``a2v`` needs ``audio`` (B, La, Ca) clean latents, ``v2a`` needs ``video`` (B, T', H', W', Cv),
    ``i2v`` needs ``image`` (B, 1, H', W', Cv): the latent of the first frame.
    """
    cfg = cfg or SamplerConfig()
    if task not in SAMPLE_TASKS:
        raise ValueError(f"sample: task={task!r}; choose one of {SAMPLE_TASKS}")
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
    if task == "i2v":
        image = _given(image, (*x_v.shape[:1], 1, *x_v.shape[2:]), "first-frame image", "i2v")

    def with_image(v: Tensor) -> Tensor:
        return torch.cat((image.to(v), v[:, 1:]), dim=1) if task == "i2v" else v

    def velocity(xs: list[Tensor], t: float) -> list[Tensor]:
        out = guided_velocity(model, with_image(xs[0]), xs[1], t, task, text, cfg, spec)
        zero = torch.zeros_like  # the given modality does not move
        return [
            zero(out.video) if task == "v2a" else out.video,
            zero(out.audio) if task == "a2v" else out.audio,
        ]

    xs = SOLVERS[cfg.solver](velocity, [x_v, x_a], ovi_schedule(cfg.steps, cfg.shift))
    if task == "a2v":
        xs[1] = x_a  # exactly the input, not a round-off copy
    if task == "v2a":
        xs[0] = x_v
    return SampleResult(video=with_image(xs[0]), audio=xs[1], task=task)


def _given(x: Tensor | None, shape: torch.Size, name: str, task: str) -> Tensor:
    if x is None or tuple(x.shape) != tuple(shape):
        got = None if x is None else tuple(x.shape)
        raise ValueError(
            f"sample: task {task} needs clean {name} latents of shape {tuple(shape)}, got {got}; "
            f"encode the input clip with the tokenizer first"
        )
    return x
