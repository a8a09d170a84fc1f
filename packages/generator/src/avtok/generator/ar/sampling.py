"""Sampling from the AR generator: KV-cached (or uncached reference) decoding, temperature, top-k, top-p,
classifier-free guidance, per-sample seeds.

Order per step (Hugging Face's): CFG on the raw logits, then temperature, top-k, top-p, then a draw from
the sample's own ``torch.Generator`` — so sample i is the same alone or in a batch. ``temperature <= 0``
is greedy (argmax; seeds unused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from avtok.generator.ar.config import ARConfig
from avtok.generator.ar.model import ARLayout, ARTransformer, ar_layout

__all__ = [
    "ARSamplerConfig",
    "ARSampleResult",
    "cfg_logits",
    "top_k_filter",
    "top_p_filter",
    "pick_tokens",
    "generate_tokens",
]


@dataclass(kw_only=True)
class ARSamplerConfig:
    temperature: float = 1.0  # <= 0: greedy
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    cfg_scale: float = 1.0  # 1: conditional only (no unconditional pass)
    use_cache: bool = True  # False: re-run the whole prefix every step (the reference path)


@dataclass(kw_only=True)
class ARSampleResult:
    """``indices (B, Nv + Na)`` int64 in the tokenizer's order (video then audio), ready for
    ``AVTokenizer.decode_indices``; ``task``; ``generated`` = which streams the model produced."""

    indices: Tensor
    task: str
    generated: tuple[str, ...]


def cfg_logits(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """``uncond + scale · (cond − uncond)``: scale 1 is the conditional logits, 0 the unconditional."""
    return uncond + scale * (cond - uncond)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits per row (ties with the k-th kept), the rest → −inf. ``k <= 0``: off."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus: keep the most probable tokens until their mass reaches p (a token is dropped when the
    tokens ranked above it already hold ≥ p); the top token is always kept. ``p >= 1``: off."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # mass ranked strictly above each token
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def pick_tokens(logits: Tensor, cfg: ARSamplerConfig, generators: list[torch.Generator]) -> Tensor:
    """``(B, K)`` guided logits → ``(B,)`` int64 tokens."""
    if cfg.temperature <= 0:
        return logits.argmax(dim=-1)
    scaled = top_p_filter(top_k_filter(logits.float() / cfg.temperature, cfg.top_k), cfg.top_p)
    probs = torch.softmax(scaled, dim=-1).cpu()
    draws = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
    return torch.cat(draws).to(logits.device)


def _prefixes(cfg: ARConfig, lay: ARLayout, given: Tensor | None, controls: Tensor, guided: bool) -> Tensor:
    """Conditional (and, when guided, unconditional) prefixes ``(B or 2B, P)``."""
    cond = controls[:, None]  # (B, 1)
    if given is not None:
        cond = torch.cat([cond, given.long()], dim=1)  # (B, P)
    if not guided:
        return cond
    uncond = cond.clone()
    if lay.task == "joint":
        uncond[:, 0] = cfg.null_class
    else:
        uncond[:, 1:] = cfg.mask_id
    return torch.cat([cond, uncond])  # (2B, P)


def _stepper(model: ARTransformer, lay: ARLayout, use_cache: bool) -> Callable[[Tensor], Tensor]:
    """``ids so far (B', n) → last-position logits (B', K)``; cached: only the new tokens are fed."""
    mod, pos = lay.modality.to(model.head.weight.device), lay.positions.to(model.head.weight.device)
    cache = model.new_cache() if use_cache else None
    seen = 0

    def step(ids: Tensor) -> Tensor:
        nonlocal seen
        b, n = ids.shape
        start = seen if use_cache else 0
        new = ids[:, start:]  # (B', n - start)
        logits = model(new, mod[start:n].expand(b, -1), pos[start:n].expand(b, -1), cache=cache)
        seen = n
        return logits[:, -1]

    return step


@torch.no_grad()
def generate_tokens(
    model: ARTransformer,
    *,
    task: str,
    labels: list[int] | Tensor | None = None,
    video: Tensor | None = None,
    audio: Tensor | None = None,
    cfg: ARSamplerConfig | None = None,
    seeds: list[int] | None = None,
) -> ARSampleResult:
    """Sample a batch. joint: ``labels`` (B class ids); a2v: ``audio (B, Na)`` indices; v2a: ``video``.

    The given tokens are copied into the result unchanged.
    """
    cfg = cfg or ARSamplerConfig()
    c = model.config
    lay = ar_layout(c, task)
    given = {"joint": None, "a2v": audio, "v2a": video}[task]
    controls = _controls(c, task, labels, given)  # (B,)
    device = model.head.weight.device
    b = controls.shape[0]
    seeds = list(range(b)) if seeds is None else list(seeds)
    if len(seeds) != b:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {b}; pass one seed per sample")
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    guided = cfg.cfg_scale != 1.0
    ids = _prefixes(c, lay, None if given is None else given.to(device), controls.to(device), guided)
    step = _stepper(model, lay, cfg.use_cache)
    for _ in range(c.seq_len - lay.prefix):
        logits = step(ids).float()  # (B or 2B, K)
        if guided:
            logits = cfg_logits(logits[:b], logits[b:], cfg.cfg_scale)
        tok = pick_tokens(logits, cfg, generators)  # (B,)
        ids = torch.cat([ids, tok.repeat(2 if guided else 1)[:, None]], dim=1)
    streams = dict(zip(lay.order, ids[:b, 1:].split([_count(c, m) for m in lay.order], dim=1), strict=True))
    indices = torch.cat([streams["video"], streams["audio"]], dim=1)  # (B, Nv + Na)
    return ARSampleResult(indices=indices, task=task, generated=lay.generated)


def _count(cfg: ARConfig, modality: str) -> int:
    return cfg.video_tokens if modality == "video" else cfg.audio_tokens


def _controls(c: ARConfig, task: str, labels, given: Tensor | None) -> Tensor:
    """Control ids ``(B,)`` of a batch, after checking the task's inputs."""
    if task == "joint":
        if labels is None:
            raise ValueError("task joint needs labels (one class id per sample, --class N)")
        return torch.tensor([c.class_id(int(x)) for x in labels])
    name = "audio" if task == "a2v" else "video"
    if given is None:
        raise ValueError(
            f"task {task} needs the conditioning {name} tokens ({name}=(B, N) indices, "
            "or --input clip.mp4 on the CLI)"
        )
    expect = c.audio_tokens if task == "a2v" else c.video_tokens
    if given.ndim != 2 or given.shape[1] != expect:
        raise ValueError(
            f"task {task}: conditioning tokens of shape {tuple(given.shape)}, expected "
            f"(B, {expect}); are the tokens from the tokenizer this model was trained on?"
        )
    if int(given.min()) < 0 or int(given.max()) >= c.codebook_size:
        raise ValueError(f"task {task}: conditioning indices outside [0, {c.codebook_size})")
    return torch.full((given.shape[0],), c.task_id(task))
