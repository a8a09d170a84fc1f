"""Config, presets and closed-form parameter count of the AR generator over AVTok's unified tokens.

Input vocabulary (one embedding table): ``[0, K)`` the AV tokenizer's codebook, ``K`` the mask token
(a/v conditioning dropped for CFG), then the control tokens that open every sequence: ``num_classes``
class ids, the null class, and one task token each for a2v and v2a. The output head predicts only
codebook indices ``[0, K)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from avtok.train.transformer import TransformerConfig

__all__ = ["AR_TASKS", "ARConfig", "AR_PRESETS", "build_ar_config", "count_ar_parameters_formula"]

AR_TASKS = ("joint", "a2v", "v2a")
MODALITY_IDS = {"control": 0, "video": 1, "audio": 2}  # rows of the modality embedding
ROPE_MIN_AXIS = 2  # rope_nd wants every axis >= 2 dims; x/y/z coords stay 0, so those rotate nothing


@dataclass(kw_only=True)
class ARConfig:
    """Decoder-only transformer over ``[control] + tokens`` (pre-norm blocks of ``avtok.tokenizer``).

    ``codebook_size``, ``video_tokens`` and ``audio_tokens`` must match the AV tokenizer the tokens come
    from (``AVTokenizerConfig.codebook_size`` / ``video_tokens`` / ``audio_tokens``).
    """

    codebook_size: int
    video_tokens: int
    audio_tokens: int
    num_classes: int
    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    name: str = "custom"

    def __post_init__(self) -> None:
        if min(self.codebook_size, self.video_tokens, self.audio_tokens, self.num_classes) < 1:
            raise ValueError(
                f"ARConfig({self.name}): codebook_size, video_tokens, audio_tokens and "
                "num_classes must all be >= 1"
            )
        self.transformer()  # validates dim / heads / RoPE split

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def num_tokens(self) -> int:
        """Generated + conditioning tokens of one clip (video then audio, the tokenizer's order)."""
        return self.video_tokens + self.audio_tokens

    @property
    def seq_len(self) -> int:
        """Every layout is ``1 + video_tokens + audio_tokens`` long (control token first)."""
        return 1 + self.num_tokens

    @property
    def mask_id(self) -> int:
        return self.codebook_size

    @property
    def null_class(self) -> int:
        return self.codebook_size + 1 + self.num_classes

    def class_id(self, label: int) -> int:
        if not 0 <= label < self.num_classes:
            raise ValueError(
                f"class {label} out of range: this model has num_classes={self.num_classes} "
                f"(pass --class 0..{self.num_classes - 1})"
            )
        return self.codebook_size + 1 + label

    def task_id(self, task: str) -> int:
        if task not in ("a2v", "v2a"):
            raise ValueError(f"task {task!r} has no task token; use 'a2v' or 'v2a' (joint uses a class)")
        return self.null_class + 1 + ("a2v", "v2a").index(task)

    @property
    def vocab_size(self) -> int:
        """Embedding rows: codebook + mask + classes + null class + 2 task tokens."""
        return self.codebook_size + 1 + self.num_classes + 1 + 2

    def transformer(self) -> TransformerConfig:
        rest = 3 * ROPE_MIN_AXIS
        return TransformerConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_hidden=self.mlp_hidden,
            norm_eps=self.norm_eps,
            rope_theta=self.rope_theta,
            # 1D sequence positions on the t axis; it takes all of the head dim but the 3×2 minimum
            rope_axes_dims=(self.head_dim // 2 * 2 - rest, ROPE_MIN_AXIS, ROPE_MIN_AXIS, ROPE_MIN_AXIS),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tiny() -> ARConfig:
    # matches build_av_tokenizer("tiny"): codebook 1000, 32 video + 16 audio tokens
    return ARConfig(
        codebook_size=1000,
        video_tokens=32,
        audio_tokens=16,
        num_classes=4,
        dim=64,
        depth=3,
        heads=4,
        mlp_hidden=256,
        name="tiny",
    )


def _paper() -> ARConfig:
    # matches build_av_tokenizer("paper"): codebook 15,360 (FSQ 8,8,8,6,5), 768 + 384 tokens.
    # AVTok's table gives ~632M for its AR model without the shape; GPT-style d 1280 × 30 blocks, 20 heads
    # (head dim 64), MLP 4d lands at 630.6M. num_classes 309 = VGGSound's classes (the seed names no set).
    return ARConfig(
        codebook_size=15360,
        video_tokens=768,
        audio_tokens=384,
        num_classes=309,
        dim=1280,
        depth=30,
        heads=20,
        mlp_hidden=5120,
        name="paper",
    )


AR_PRESETS = {"tiny": _tiny, "paper": _paper}


def build_ar_config(name: str, **overrides) -> ARConfig:
    if name not in AR_PRESETS:
        raise ValueError(f"unknown AR preset {name!r}; choose one of {sorted(AR_PRESETS)}")
    return dataclasses.replace(AR_PRESETS[name](), **overrides) if overrides else AR_PRESETS[name]()


def count_ar_parameters_formula(cfg: ARConfig) -> dict[str, int]:
    """Closed-form parameter counts: ``embed`` (tokens + modality), ``blocks``, ``head`` (final norm +
    output projection), ``total``."""
    d, h = cfg.dim, cfg.mlp_hidden
    attn = 3 * d * d + 3 * d + d * d + d  # qkv (with bias) + output projection
    mlp = d * h + h + h * d + d
    block = attn + mlp + 2 * 2 * d  # + two LayerNorms
    embed = cfg.vocab_size * d + len(MODALITY_IDS) * d
    head = 2 * d + d * cfg.codebook_size + cfg.codebook_size
    blocks = cfg.depth * block
    return {"embed": embed, "blocks": blocks, "head": head, "total": embed + blocks + head}
