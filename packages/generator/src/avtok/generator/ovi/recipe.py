"""Training the twin DiT on the shared avtok training runtime (no second trainer).

``latent_dataset`` encodes clips once (latents + cached text embeddings), ``flow_step`` is the
``step_fn`` for :class:`avtok.train.Trainer`, and ``freeze`` sets ``requires_grad`` for
Ovi's stages: ``"attention"`` freezes every FFN (fusion stage: self-, text- and cross-modal attention
train), ``"audio"`` / ``"video"`` train one tower alone (the other runs frozen; note Ovi's audio
pre-training has no video at all, which this mode does not reproduce).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from avtok.generator.ovi.config import LatentSpec
from avtok.generator.ovi.flow import FlowBatch, FlowMatchingConfig, flow_matching_loss
from avtok.generator.ovi.latents import LatentCodec
from avtok.generator.ovi.text import TextEmbeddings
from avtok.media_io import AVClip
from avtok.train import TrainConfig

__all__ = ["FREEZE_MODES", "flow_step", "freeze", "latent_dataset", "short_run_config", "trainable_count"]

FREEZE_MODES = ("none", "attention", "audio", "video")


def short_run_config(
    *,
    lr: float,
    steps: int,
    checkpoint_dir: str | Path,
    warmup_steps: int,
    log_every: int,
    min_lr: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TrainConfig:
    """Runtime settings of the generators' short CPU runs (CLI, evidence scripts, tests): warmup, then
    cosine to ``min_lr`` (default lr / 10); no EMA and no weight decay (tiny models, few steps); one
    checkpoint at the end."""
    return TrainConfig(
        lr=lr,
        min_lr=lr / 10 if min_lr is None else min_lr,
        warmup_steps=warmup_steps,
        max_steps=steps,
        ema_decay=None,
        weight_decay=0.0,
        checkpoint_dir=Path(checkpoint_dir),
        checkpoint_every=steps,
        log_every=log_every,
        seed=seed,
        progress=progress,
    )


def freeze(model: nn.Module, mode: str) -> nn.Module:
    """Set ``requires_grad`` for a training stage (see the module docstring); returns the model."""
    if mode not in FREEZE_MODES:
        raise ValueError(f"freeze: mode={mode!r}; choose one of {FREEZE_MODES}")
    for name, p in model.named_parameters():
        if mode == "attention":
            p.requires_grad_(".ffn." not in name)
        elif mode in ("audio", "video"):
            p.requires_grad_(name.startswith(f"{mode}."))
        else:
            p.requires_grad_(True)
    return model


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def latent_dataset(
    clips: Sequence[AVClip], codec: LatentCodec, text: TextEmbeddings
) -> list[dict[str, Tensor]]:
    """One dict per clip: video (T', H', W', Cv), audio (La, Ca), text (Lt, Dt), text_mask (Lt,)."""
    if len(clips) != text.embeddings.shape[0]:
        raise ValueError(
            f"latent_dataset: {len(clips)} clips but {text.embeddings.shape[0]} text embeddings; "
            "give one prompt per clip"
        )
    items = []
    for i, clip in enumerate(clips):
        video, audio = codec.encode(clip)
        items.append({"video": video, "audio": audio, "text": text.embeddings[i], "text_mask": text.mask[i]})
    return items


def flow_step(
    fm: FlowMatchingConfig | None = None,
    *,
    spec: LatentSpec | None = None,
    null_text: TextEmbeddings | None = None,
) -> Callable[[nn.Module, dict], dict[str, Tensor]]:
    """``step_fn(model, batch) -> {"loss", "loss_video", "loss_audio"}`` for the shared Trainer.

    ``null_text``: the (1, Lt, Dt) embedding (padded to the dataset's Lt) that replaces the prompt with
    probability ``fm.text_dropout`` for classifier-free guidance — the negative / empty prompt; zeros
    when None.
    """
    fm = fm or FlowMatchingConfig()

    def step(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        text = batch["text"]
        null = torch.zeros_like(text[:1]) if null_text is None else null_text.embeddings.to(text)
        null_mask = None if null_text is None else null_text.mask.to(text.device)
        fb = FlowBatch(
            video=batch["video"], audio=batch["audio"], text=text, text_mask=batch.get("text_mask")
        )
        return flow_matching_loss(model, fb, fm, null_text=null, null_mask=null_mask, spec=spec).as_dict()

    return step
