"""The AVTok-style 1D audio-video tokenizer family: config and presets (``config``), the model (``model``),
its alignment / AR-prior heads (``heads``), clip-level encode / decode / reconstruction (``clip``) and the
training recipe (``recipe``)."""

from avtok.tokenizer.av.clip import (
    AVClipReconstructor,
    clip_inputs,
    decode_clips,
    encode_clips,
    reconstruct_clip,
)
from avtok.tokenizer.av.config import AV_PRESETS, AVTokenizerConfig, expected_av_num_params, resolve_av_config
from avtok.tokenizer.av.heads import AlignHead, ARPrior, alignment_loss
from avtok.tokenizer.av.model import AVReconstruction, AVTokenizer, AVTokenizerOutput, build_av_tokenizer

__all__ = [
    "AVClipReconstructor", "clip_inputs", "decode_clips", "encode_clips", "reconstruct_clip",
    "AV_PRESETS", "AVTokenizerConfig", "expected_av_num_params", "resolve_av_config",
    "AlignHead", "ARPrior", "alignment_loss",
    "AVReconstruction", "AVTokenizer", "AVTokenizerOutput", "build_av_tokenizer",
]
