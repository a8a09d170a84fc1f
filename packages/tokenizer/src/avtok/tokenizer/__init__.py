"""avtok.tokenizer: AToken-style visual tokenizer (sparse 4D patches, 4D RoPE, KL/FSQ latents) and the
AVTok-style 1D audio-video tokenizer (shared dual-stream transformer, one FSQ codebook).

Families are subpackages: :mod:`avtok.tokenizer.visual` and :mod:`avtok.tokenizer.av`, each with its config,
model and training recipe; :mod:`avtok.tokenizer.families` registers them for the shared stage runner
(:mod:`avtok.tokenizer.runner`). The public names below are re-exported from both for convenience; the
runtime pieces they build on (``Transformer``, ``from_pretrained``) live in :mod:`avtok.train`."""

from avtok.tokenizer import av, visual
from avtok.tokenizer.__about__ import __version__
from avtok.tokenizer.av import *  # noqa: F403  (the AV family's public names)
from avtok.tokenizer.types import TokenizerOutput
from avtok.tokenizer.visual import *  # noqa: F403  (the visual family's public names)
from avtok.train.pretrained import from_pretrained, register_model, save_pretrained
from avtok.train.transformer import Attention, Block, KVCache, LayerKV, Transformer, TransformerConfig

__all__ = [
    "__version__", "TokenizerOutput", *av.__all__, *visual.__all__,
    # the runtime pieces the families build on (avtok.train), re-exported for the README examples
    "from_pretrained", "register_model", "save_pretrained",
    "Attention", "Block", "KVCache", "LayerKV", "Transformer", "TransformerConfig",
]
