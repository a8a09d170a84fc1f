"""Ovi's text encoder: umT5-XXL's encoder (transformers ``UMT5EncoderModel``) read from a local folder, offline.

Ovi (Wan's ``T5EncoderModel``) cleans each prompt (ftfy, HTML unescape twice, whitespace collapsed),
tokenizes it with the ``google/umt5-xxl`` tokenizer padded / truncated to ``text_len`` = 512 (EOS
appended), runs the encoder with the padding mask and keeps the first ``n`` rows of each prompt; the
DiT then pads every context back to 512 rows with **zeros**. :meth:`UMT5TextEncoder.encode` returns
exactly that: ``(B, 512, 4096)`` float32 with zero rows after each prompt, and the mask.

Weights: either a Hugging Face folder (``config.json`` + weights + tokenizer files), or Ovi's own
checkpoint ``Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth`` (Wan's T5 layout, renamed by
:func:`wan_t5_to_hf_keys`) beside its tokenizer folder ``Wan2.2-TI2V-5B/google/umt5-xxl``.
Nothing is downloaded (``local_files_only=True``).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import torch
from torch import Tensor

from avtok.generator.ovi.checkpoints import load_exact, read_state_dict
from avtok.generator.ovi.text import TextEmbeddings

__all__ = ["OVI_TEXT_LEN", "UMT5_XXL_CONFIG", "UMT5TextEncoder", "clean_prompt", "wan_t5_to_hf_keys"]

OVI_TEXT_LEN = 512
# Wan's umt5_xxl(encoder_only=True) as a transformers UMT5Config
UMT5_XXL_CONFIG: dict[str, object] = dict(
    vocab_size=256384,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6,
    dropout_rate=0.0,
    pad_token_id=0,
    eos_token_id=1,
    tie_word_embeddings=False,
)

_WAN_T5_RULES: tuple[tuple[str, str], ...] = (
    (r"^token_embedding\.", "shared."),
    (r"^norm\.", "encoder.final_layer_norm."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.block.\1.layer.0.layer_norm."),
    (r"^blocks\.(\d+)\.attn\.([qkvo])\.", r"encoder.block.\1.layer.0.SelfAttention.\2."),
    (
        r"^blocks\.(\d+)\.pos_embedding\.embedding\.",
        r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias.",
    ),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.block.\1.layer.1.layer_norm."),
    (r"^blocks\.(\d+)\.ffn\.gate\.0\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_0."),
    (r"^blocks\.(\d+)\.ffn\.fc1\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_1."),
    (r"^blocks\.(\d+)\.ffn\.fc2\.", r"encoder.block.\1.layer.1.DenseReluDense.wo."),
)


def wan_t5_to_hf_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename Wan's T5 encoder state dict (``models_t5_umt5-xxl-enc-bf16.pth``) to ``UMT5EncoderModel``'s."""
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in _WAN_T5_RULES:
            new = re.sub(pattern, repl, new)
        out[new] = value
    if "shared.weight" in out:
        out.setdefault("encoder.embed_tokens.weight", out["shared.weight"])  # tied in transformers
    return out


def clean_prompt(text: str) -> str:
    """Wan's ``clean='whitespace'``: ftfy's fixes, HTML unescaped twice, whitespace runs collapsed, stripped."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


def _require_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no such folder for the umT5 {what}; download google/umt5-xxl (or Ovi's "
            "Wan2.2-TI2V-5B checkpoint folder) on a networked machine and pass the local folder"
        )


class UMT5TextEncoder:
    """Frozen umT5 encoder + tokenizer; ``encode(prompts)`` -> :class:`TextEmbeddings` padded to ``text_len`` with zeros."""

    def __init__(
        self,
        folder: str | Path,
        *,
        weights: str | Path | None = None,
        tokenizer_folder: str | Path | None = None,
        text_len: int = OVI_TEXT_LEN,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """``folder``: a transformers folder (config + weights + tokenizer). With ``weights`` (Wan's ``.pth``),
        ``folder`` only needs the tokenizer (and may hold a ``config.json``; else umT5-XXL's config is used)."""
        folder = Path(folder)
        tok_folder = Path(tokenizer_folder) if tokenizer_folder is not None else folder
        _require_folder(folder, "encoder")
        _require_folder(tok_folder, "tokenizer")
        from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

        self.tokenizer = AutoTokenizer.from_pretrained(str(tok_folder), local_files_only=True)
        if weights is None:
            if not (folder / "config.json").is_file():
                raise FileNotFoundError(
                    f"{folder}: no config.json; pass a transformers umT5 folder, or weights=<Ovi's "
                    "models_t5_umt5-xxl-enc-bf16.pth> beside its tokenizer folder"
                )
            model = UMT5EncoderModel.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype)
        else:
            has_config = (folder / "config.json").is_file()
            config = (
                UMT5Config.from_pretrained(str(folder), local_files_only=True)
                if has_config
                else UMT5Config(**UMT5_XXL_CONFIG)
            )
            model = UMT5EncoderModel(config)
            load_exact(model, wan_t5_to_hf_keys(read_state_dict(weights)), source=str(weights))
            model = model.to(dtype)
        self.model = model.to(device).eval().requires_grad_(False)
        self.text_len, self.device = int(text_len), torch.device(device)
        self.dim = int(self.model.config.d_model)
        self.name = f"umt5:{folder.name}"

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextEmbeddings:
        """embeddings (B, text_len, d_model) float32 with zero rows after each prompt's tokens; mask (B, text_len) bool."""
        if isinstance(prompts, str):
            raise TypeError("encode: pass a list of prompts, e.g. [prompt]")
        tok = self.tokenizer(
            [clean_prompt(p) for p in prompts],
            padding="max_length",
            truncation=True,
            max_length=self.text_len,
            add_special_tokens=True,
            return_tensors="pt",
        )
        ids, mask = tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)
        states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()  # (B, text_len, D)
        mask = mask.bool()
        return TextEmbeddings(embeddings=states * mask.unsqueeze(-1), mask=mask)
