"""avtok.tokenizer: AToken-style visual tokenizer (sparse 4D patches, 4D RoPE, KL/FSQ latents) and the
AVTok-style 1D audio-video tokenizer (shared dual-stream transformer, one FSQ codebook).

Families are subpackages: :mod:`avtok.tokenizer.visual` and :mod:`avtok.tokenizer.av`, each with its config,
model and training recipe; :mod:`avtok.tokenizer.families` registers them for the shared stage runner
(:mod:`avtok.tokenizer.runner`). The public names below are re-exported from both for convenience; the
runtime pieces they build on (``Transformer``, ``from_pretrained``) live in :mod:`avtok.train`."""

from avtok.tokenizer.__about__ import __version__
from avtok.tokenizer.av.clip import (
    AVClipReconstructor,
    clip_inputs,
    decode_clips,
    encode_clips,
    reconstruct_clip,
)
from avtok.tokenizer.av.config import (
    AV_PRESETS,
    AVTokenizerConfig,
    expected_av_num_params,
    resolve_av_config,
)
from avtok.tokenizer.av.heads import AlignHead, ARPrior, alignment_loss
from avtok.tokenizer.av.model import (
    AVReconstruction,
    AVTokenizer,
    AVTokenizerOutput,
    build_av_tokenizer,
)
from avtok.tokenizer.types import TokenizerOutput
from avtok.tokenizer.visual.config import (
    PRESETS,
    TilingConfig,
    TransformerConfig,
    VisualTokenizerConfig,
    expected_num_params,
    resolve_config,
)
from avtok.tokenizer.visual.model import PosEmbed2D, VisualTokenizer, build_tokenizer
from avtok.tokenizer.visual.posterior import LatentHead, PosteriorOutput, kl_divergence
from avtok.tokenizer.visual.reconstruct import VisualReconstructor
from avtok.tokenizer.visual.semantic import AttentionPool, SemanticHead
from avtok.tokenizer.visual.tiling import run_tiled, run_tiled_sample, tile_ids
from avtok.train.pretrained import from_pretrained, register_model, save_pretrained
from avtok.train.transformer import Attention, Block, KVCache, LayerKV, Transformer

__all__ = [
    "__version__",
    "PRESETS",
    "TilingConfig",
    "TransformerConfig",
    "VisualTokenizerConfig",
    "expected_num_params",
    "resolve_config",
    "LatentHead",
    "PosteriorOutput",
    "kl_divergence",
    "from_pretrained",
    "register_model",
    "save_pretrained",
    "AttentionPool",
    "SemanticHead",
    "run_tiled",
    "run_tiled_sample",
    "tile_ids",
    "Attention",
    "Block",
    "KVCache",
    "LayerKV",
    "Transformer",
    "TokenizerOutput",
    "PosEmbed2D",
    "VisualTokenizer",
    "VisualReconstructor",
    "build_tokenizer",
    "AV_PRESETS",
    "AVTokenizerConfig",
    "expected_av_num_params",
    "resolve_av_config",
    "AVTokenizer",
    "AVTokenizerOutput",
    "AVReconstruction",
    "build_av_tokenizer",
    "AlignHead",
    "ARPrior",
    "alignment_loss",
    "AVClipReconstructor",
    "clip_inputs",
    "encode_clips",
    "decode_clips",
    "reconstruct_clip",
]
