"""Decoder-only transformer over AVTok's unified tokens, and the three sequence layouts.

Layouts (every one is ``1 + Nv + Na`` long, control token first):

==========  ==============================  ==========================  =================
task        sequence                        conditioning (CFG drop)     generated
==========  ==============================  ==========================  =================
``joint``   ``[class] + video + audio``     class (→ null class)        video, audio
``a2v``     ``[<a2v>] + audio + video``     audio tokens (→ mask ids)   video
``v2a``     ``[<v2a>] + video + audio``     video tokens (→ mask ids)   audio
==========  ==============================  ==========================  =================

Positions are RoPE coordinates on the t axis and are *canonical*: control 0, video token i at 1 + i,
audio token j at 1 + Nv + j, whatever the order in the sequence, so a token keeps its position in every
task (as the tokenizer's AR prior keeps joint positions). A learned modality embedding (control / video /
audio) is added to the token embedding: video and audio share one codebook, so the index alone does not
say which stream a token belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avtok.generator.ar.config import AR_TASKS, MODALITY_IDS, ARConfig
from avtok.kernels import build_attention_mask
from avtok.train.pretrained import register_model
from avtok.train.transformer import KVCache, Transformer

__all__ = ["ARLayout", "ARSequence", "ARTransformer", "ar_layout", "build_sequences"]


@dataclass(kw_only=True, frozen=True)
class ARLayout:
    """One task's layout: ``order`` of the streams after the control token, ``prefix`` (control +
    conditioning) length, and per-position ``modality`` / ``positions`` ``(L,)`` int64."""

    task: str
    order: tuple[str, ...]
    prefix: int
    modality: Tensor
    positions: Tensor

    @property
    def generated(self) -> tuple[str, ...]:
        return self.order if self.task == "joint" else self.order[1:]


def ar_layout(cfg: ARConfig, task: str) -> ARLayout:
    if task not in AR_TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {AR_TASKS}")
    order = ("audio", "video") if task == "a2v" else ("video", "audio")
    counts = {"video": cfg.video_tokens, "audio": cfg.audio_tokens}
    start = {"video": 1, "audio": 1 + cfg.video_tokens}  # canonical positions
    modality = [MODALITY_IDS["control"]]
    positions = [0]
    for name in order:
        modality += [MODALITY_IDS[name]] * counts[name]
        positions += range(start[name], start[name] + counts[name])
    prefix = 1 if task == "joint" else 1 + counts[order[0]]
    return ARLayout(
        task=task,
        order=order,
        prefix=prefix,
        modality=torch.tensor(modality),
        positions=torch.tensor(positions),
    )


@dataclass(kw_only=True)
class ARSequence:
    """A batch of full sequences: ``ids``, ``modality``, ``positions`` ``(B, L)`` int64 and ``targets``
    ``(B, L - 1)`` (the id at ``j + 1`` where it is a generated token, else -100)."""

    ids: Tensor
    modality: Tensor
    positions: Tensor
    targets: Tensor


def build_sequences(
    cfg: ARConfig, indices: Tensor, controls: Tensor, tasks: list[str], drop: Tensor
) -> ARSequence:
    """Teacher-forcing sequences from tokenizer indices ``(B, Nv + Na)`` (video then audio).

    ``controls (B,)``: control ids (``cfg.class_id(label)`` for joint; ignored for a2v / v2a);
    ``drop (B,)`` bool: condition dropout (joint → null class; a2v / v2a → conditioning tokens → mask id).
    """
    rows = []
    for i, task in enumerate(tasks):
        lay = ar_layout(cfg, task)
        video, audio = indices[i, : cfg.video_tokens], indices[i, cfg.video_tokens :]
        streams = {"video": video.long(), "audio": audio.long()}
        if task == "joint":
            ctrl = cfg.null_class if bool(drop[i]) else int(controls[i])
        else:
            ctrl = cfg.task_id(task)
            if bool(drop[i]):
                streams[lay.order[0]] = torch.full_like(streams[lay.order[0]], cfg.mask_id)
        ids = torch.cat([torch.tensor([ctrl], device=indices.device), *(streams[m] for m in lay.order)])
        target = ids[1:].clone()
        target[: lay.prefix - 1] = -100  # conditioning tokens are given, not predicted
        rows.append((ids, lay.modality.to(ids.device), lay.positions.to(ids.device), target))
    ids, modality, positions, targets = (torch.stack(x) for x in zip(*rows, strict=True))
    return ARSequence(ids=ids, modality=modality, positions=positions, targets=targets)


class ARTransformer(nn.Module):
    """``(ids, modality, positions) (B, L) → next-token logits (B, L, codebook_size)``.

    Causal pre-norm transformer (``avtok.tokenizer.transformer.Transformer``, kernels' attention). With a
    ``KVCache`` the call appends to the cache: the new tokens see every cached token (bottom-right causal
    mask), which is what makes cached decoding equal to re-running the whole prefix.
    """

    kind = "avtok-ar"  # avtok.train.pretrained save_pretrained / from_pretrained

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.modality = nn.Embedding(len(MODALITY_IDS), config.dim)
        self.net = Transformer(config.transformer())
        self.head = nn.Linear(config.dim, config.codebook_size)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.modality.weight, std=0.02)

    def forward(
        self, ids: Tensor, modality: Tensor, positions: Tensor, *, cache: KVCache | None = None
    ) -> Tensor:
        b, n = ids.shape
        x = self.embed(ids) + self.modality(modality)  # (B, L, D)
        coords = torch.zeros(b, n, 4, device=ids.device)
        coords[..., 0] = positions.to(coords)  # (B, L, 4): 1D position on the t axis
        past = 0 if cache is None else cache.layers[0].num_tokens
        mask = build_attention_mask(n, past + n, causal=True, device=ids.device)  # (L, past + L)
        return self.head(self.net(x, coords, mask=mask, cache=cache))  # (B, L, K)

    def new_cache(self) -> KVCache:
        return KVCache.for_depth(self.config.depth)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


register_model(ARTransformer.kind, ARConfig, ARTransformer)
