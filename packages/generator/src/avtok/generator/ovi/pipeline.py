"""Prompt (and optional clip) in, playable clips out: text encoding, sampling, decoding, saving.

:class:`OviPipeline` satisfies ``avtok.eval.Generator`` (``sample(num_samples, **kw) -> list[AVClip]``), so
``avtok.eval.evaluate_generation`` scores its clips like any other model's. A trained pipeline is a
directory: the model via ``avtok.tokenizer.pretrained.save_pretrained``, ``pipeline.json`` (the latent
codec's kind and config — with its latent statistics — and the text encoder's name) and, for
tokenizer latents, the tokenizer in ``tokenizer/`` (safetensors + JSON like the model).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from avtok.generator.ovi.latents import (
    LatentCodec,
    PooledAVLatents,
    PooledLatentConfig,
    TokenizerLatentConfig,
    TokenizerLatents,
)
from avtok.generator.ovi.sampling import SamplerConfig, SampleResult, TextCondition, sample
from avtok.generator.ovi.text import TextEncoder, minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.media_io import AVClip
from avtok.train.atomic import atomic_write_json
from avtok.train.pretrained import from_pretrained, save_pretrained

__all__ = ["PIPELINE_NAME", "OviPipeline"]

PIPELINE_NAME = "pipeline.json"
TOKENIZER_DIR = "tokenizer"  # the latent codec's tokenizer (TokenizerLatents), saved with the model


class OviPipeline:
    """A twin DiT + a latent codec + a text encoder."""

    def __init__(self, model: TwinDiT, codec: LatentCodec, encoder: TextEncoder) -> None:
        if encoder.dim != model.cfg.text_dim:
            raise ValueError(
                f"OviPipeline: text encoder {encoder.name} gives {encoder.dim}-d embeddings but the "
                f"model expects text_dim={model.cfg.text_dim}; build the model with that text_dim"
            )
        self.model, self.codec, self.encoder = model.eval(), codec, encoder

    def conditions(
        self, prompts: list[str], *, negative_video: str = "", negative_audio: str = ""
    ) -> TextCondition:
        b = len(prompts)
        pos = self.encoder.encode(list(prompts))
        neg_v = self.encoder.encode([negative_video] * b)
        neg_a = self.encoder.encode([negative_audio] * b)
        return TextCondition(
            text=pos.embeddings,
            mask=pos.mask,
            negative_video=neg_v.embeddings,
            negative_video_mask=neg_v.mask,
            negative_audio=neg_a.embeddings,
            negative_audio_mask=neg_a.mask,
        )

    def generate(
        self,
        prompts: list[str],
        *,
        task: str = "t2av",
        clips: list[AVClip] | None = None,
        seeds: list[int] | None = None,
        cfg: SamplerConfig | None = None,
        negative_video: str = "",
        negative_audio: str = "",
    ) -> list[AVClip]:
        """One decoded clip per prompt; a2v / v2a / i2v take the conditioning ``clips`` (one per prompt; i2v
        keeps the first latent frame of each)."""
        text = self.conditions(prompts, negative_video=negative_video, negative_audio=negative_audio)
        given: dict[str, torch.Tensor] = {}
        if task in ("a2v", "v2a", "i2v"):
            if not clips or len(clips) != len(prompts):
                raise ValueError(f"generate: task {task} needs one input clip per prompt (--input clip.mp4)")
            lat = [self.codec.encode(c) for c in clips]
            if task == "i2v":  # the first latent frame of the input window is the given image
                given["image"] = torch.stack([x[0][:1] for x in lat])
            else:
                key, idx = ("audio", 1) if task == "a2v" else ("video", 0)
                given[key] = torch.stack([x[idx] for x in lat])
        res: SampleResult = sample(
            self.model, self.codec.spec, text, task=task, cfg=cfg, seeds=seeds, **given
        )
        return [self.codec.decode(res.video[i], res.audio[i]) for i in range(len(prompts))]

    def sample(self, num_samples: int, *, prompt: str = "", seed: int = 0, **kw) -> list[AVClip]:
        """``avtok.eval.Generator``: ``num_samples`` clips of one prompt with seeds seed, seed+1, …"""
        return self.generate([prompt] * num_samples, seeds=[seed + i for i in range(num_samples)], **kw)

    def save(self, directory: str | Path) -> Path:
        """The model, ``pipeline.json`` and (TokenizerLatents) the tokenizer in ``tokenizer/``."""
        from avtok.generator.ovi.ovi_latents import OviLatents

        if isinstance(self.codec, TokenizerLatents):
            kind = "tokenizer"
        elif isinstance(self.codec, OviLatents):
            kind = "ovi"
        elif isinstance(self.codec, PooledAVLatents):
            kind = "pooled"
        else:
            raise TypeError(f"OviPipeline.save: cannot save a {type(self.codec).__name__} codec; use "
                            "TokenizerLatents or PooledAVLatents, or save the model with save_pretrained")
        out = save_pretrained(self.model, directory)
        if kind == "tokenizer":
            save_pretrained(self.codec.tokenizer, out / TOKENIZER_DIR)
        meta = {"codec": kind, "codec_config": dataclasses.asdict(self.codec.cfg),
                "text_encoder": self.encoder.name,
                "text_encoder_files": getattr(self.encoder, "files", None)}  # umT5: where to reload it
        atomic_write_json(out / PIPELINE_NAME, meta, indent=2)  # whole or absent, never half-written
        return out

    @classmethod
    def for_ovi(cls, model_dir: str | Path, *, ckpt_dir: str | Path, text_encoder: str | Path | None = None,
                frames: int = 121, size: int = 704) -> OviPipeline:
        """A converted Ovi model (``convert --from ovi``) with Ovi's VAEs from ``ckpt_dir`` and umT5: a
        transformers folder ``text_encoder``, else Ovi's ``Wan2.2-TI2V-5B`` umT5 files under ``ckpt_dir``."""
        from avtok.generator.ovi.ovi_latents import OviLatentConfig, OviLatents

        codec = OviLatents(OviLatentConfig(checkpoint_dir=str(ckpt_dir), frames=frames, size=size))
        return cls(from_pretrained(model_dir), codec, umt5_encoder(**umt5_files(ckpt_dir, text_encoder)))

    @classmethod
    def load(cls, directory: str | Path, *, encoder: TextEncoder | None = None) -> OviPipeline:
        meta_path = Path(directory) / PIPELINE_NAME
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path}: missing; pass a directory written by OviPipeline.save "
                "(avtok-generator train -o DIR)"
            )
        meta = json.loads(meta_path.read_text())
        model = from_pretrained(directory)
        if meta["codec"] == "ovi":
            from avtok.generator.ovi.ovi_latents import OviLatentConfig, OviLatents

            files = meta.get("text_encoder_files") or {}
            return cls(model, OviLatents(OviLatentConfig(**meta["codec_config"])),
                       encoder or umt5_encoder(**files))
        if meta["codec"] == "tokenizer":
            tokenizer = from_pretrained(Path(directory) / TOKENIZER_DIR)
            codec = TokenizerLatents(tokenizer, TokenizerLatentConfig(**meta["codec_config"]))
        else:
            codec = PooledAVLatents(PooledLatentConfig(**meta["codec_config"]))
        return cls(model, codec, encoder or minilm_encoder())  # type: ignore[arg-type]


def umt5_files(ckpt_dir: str | Path, text_encoder: str | Path | None) -> dict[str, str | None]:
    if text_encoder is not None:
        return {"folder": str(text_encoder), "weights": None}
    wan = Path(ckpt_dir) / "Wan2.2-TI2V-5B"
    return {"folder": str(wan / "google" / "umt5-xxl"),
            "weights": str(wan / "models_t5_umt5-xxl-enc-bf16.pth")}


def umt5_encoder(folder: str, weights: str | None = None) -> TextEncoder:
    """Ovi's umT5 encoder (offline, local files), remembering its files so a saved pipeline reloads it."""
    from avtok.generator.ovi.umt5 import UMT5TextEncoder

    enc = UMT5TextEncoder(folder, weights=weights)
    enc.files = {"folder": folder, "weights": weights}
    return enc  # type: ignore[return-value]
