"""The autoregressive generator family over AVTok's unified audio-video tokens: config and presets
(``config``), layouts and the transformer (``model``), KV-cached sampling with CFG (``sampling``), the loss and
the Trainer's step (``train``), clips <-> tokens <-> clips (``pipeline``)."""

from avtok.generator.ar.config import (
    AR_PRESETS,
    AR_TASKS,
    ARConfig,
    build_ar_config,
    count_ar_parameters_formula,
)
from avtok.generator.ar.model import ARLayout, ARSequence, ARTransformer, ar_layout, build_sequences
from avtok.generator.ar.pipeline import ARPipeline, decode_indices, encode_windows, read_windows
from avtok.generator.ar.sampling import (
    ARSamplerConfig,
    ARSampleResult,
    cfg_logits,
    generate_tokens,
    top_k_filter,
    top_p_filter,
)
from avtok.generator.ar.train import ARTrainConfig, ar_loss, ar_step, token_dataset

__all__ = [
    "AR_PRESETS", "AR_TASKS", "ARConfig", "build_ar_config", "count_ar_parameters_formula",
    "ARLayout", "ARSequence", "ARTransformer", "ar_layout", "build_sequences",
    "ARPipeline", "decode_indices", "encode_windows", "read_windows",
    "ARSampleResult", "ARSamplerConfig", "cfg_logits", "generate_tokens", "top_k_filter", "top_p_filter",
    "ARTrainConfig", "ar_loss", "ar_step", "token_dataset",
]
