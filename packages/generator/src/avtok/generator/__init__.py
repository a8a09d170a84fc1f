"""avtok.generator: Ovi-style twin-DiT audio-video generator (flow matching, Euler / UniPC, per-modality CFG)
and an autoregressive generator over AVTok's unified audio-video tokens (a2v, v2a, class-conditional joint).

Families are subpackages: :mod:`avtok.generator.ovi` (the twin DiT) and :mod:`avtok.generator.ar`; each holds
its config, model, sampling and training recipe; :mod:`avtok.generator.recipes` is the one place that builds a
generator ``Trainer`` (``train_generator``, ``train_ar``); :mod:`avtok.generator.job` is the main job
(console command ``avtok``). The public names below are re-exported for convenience.
"""

from avtok.generator.__about__ import __version__
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
from avtok.generator.ovi.config import (
    PRESETS,
    LatentSpec,
    TwinDiTConfig,
    build_config,
    count_parameters_formula,
)
from avtok.generator.ovi.flow import TASKS, FlowBatch, FlowLoss, FlowMatchingConfig, flow_matching_loss
from avtok.generator.ovi.pipeline import OviPipeline
from avtok.generator.ovi.sampling import SamplerConfig, SampleResult, TextCondition, guided_velocity, sample
from avtok.generator.ovi.solvers import (
    Schedule,
    UniPC,
    euler,
    ovi_schedule,
    shift_sigmas,
    sigma_grid,
    unipc,
)
from avtok.generator.ovi.twin_dit import TwinDiT, TwinOutput

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
    "OviPipeline",
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
