"""avtok.generator: Ovi-style twin-DiT audio-video generator (flow matching, Euler / UniPC, per-modality CFG)
and an autoregressive generator over AVTok's unified audio-video tokens (a2v, v2a, class-conditional joint).

Modules: ``config`` (LatentSpec, TwinDiTConfig, presets, parameter formula), ``twin_dit`` (the model),
``flow`` (loss, tasks), ``solvers`` (Euler, UniPC), ``sampling`` (CFG, tasks, seeds), ``text`` (frozen text
encoder + embedding cache), ``latents`` (latent codecs), ``train`` (shared-Trainer step, freezing),
``pipeline`` (prompt -> clips), ``cli``. AR: ``ar_config`` (ARConfig, presets, parameter formula),
``ar_model`` (layouts, ARTransformer), ``ar_sampling`` (KV cache, temperature / top-k / top-p, CFG, seeds),
``ar_train`` (loss, the Trainer's step), ``ar_pipeline`` (clips <-> tokens <-> clips, save / load).
"""

from avtok.generator.__about__ import __version__
from avtok.generator.ar_config import (
    AR_PRESETS,
    AR_TASKS,
    ARConfig,
    build_ar_config,
    count_ar_parameters_formula,
)
from avtok.generator.ar_model import ARLayout, ARSequence, ARTransformer, ar_layout, build_sequences
from avtok.generator.ar_pipeline import ARPipeline, decode_indices, encode_windows, read_windows
from avtok.generator.ar_sampling import (
    ARSamplerConfig,
    ARSampleResult,
    cfg_logits,
    generate_tokens,
    top_k_filter,
    top_p_filter,
)
from avtok.generator.ar_train import ARTrainConfig, ar_loss, ar_step, token_dataset
from avtok.generator.config import PRESETS, LatentSpec, TwinDiTConfig, build_config, count_parameters_formula
from avtok.generator.flow import TASKS, FlowBatch, FlowLoss, FlowMatchingConfig, flow_matching_loss
from avtok.generator.sampling import SamplerConfig, SampleResult, TextCondition, guided_velocity, sample
from avtok.generator.solvers import Schedule, UniPC, euler, ovi_schedule, shift_sigmas, sigma_grid, unipc
from avtok.generator.twin_dit import TwinDiT, TwinOutput

__all__ = [
    "AR_PRESETS",
    "AR_TASKS",
    "ARConfig",
    "ARLayout",
    "ARPipeline",
    "ARSampleResult",
    "ARSamplerConfig",
    "ARSequence",
    "ARTrainConfig",
    "ARTransformer",
    "PRESETS",
    "Schedule",
    "UniPC",
    "TASKS",
    "FlowBatch",
    "FlowLoss",
    "FlowMatchingConfig",
    "LatentSpec",
    "SampleResult",
    "SamplerConfig",
    "TextCondition",
    "TwinDiT",
    "TwinDiTConfig",
    "TwinOutput",
    "__version__",
    "ar_layout",
    "ar_loss",
    "ar_step",
    "build_ar_config",
    "build_sequences",
    "cfg_logits",
    "count_ar_parameters_formula",
    "decode_indices",
    "encode_windows",
    "generate_tokens",
    "read_windows",
    "token_dataset",
    "top_k_filter",
    "top_p_filter",
    "build_config",
    "count_parameters_formula",
    "euler",
    "flow_matching_loss",
    "guided_velocity",
    "ovi_schedule",
    "sample",
    "shift_sigmas",
    "sigma_grid",
    "unipc",
]
