"""avtok.generator: Ovi-style twin-DiT audio-video generator (flow matching, Euler / UniPC, per-modality CFG).

Modules: ``config`` (LatentSpec, TwinDiTConfig, presets, parameter formula), ``twin_dit`` (the model),
``flow`` (loss, tasks), ``solvers`` (Euler, UniPC), ``sampling`` (CFG, tasks, seeds), ``text`` (frozen text
encoder + embedding cache), ``latents`` (latent codecs), ``train`` (shared-Trainer step, freezing),
``pipeline`` (prompt -> clips), ``cli``.
"""

from avtok.generator.__about__ import __version__
from avtok.generator.config import PRESETS, LatentSpec, TwinDiTConfig, build_config, count_parameters_formula
from avtok.generator.flow import TASKS, FlowBatch, FlowLoss, FlowMatchingConfig, flow_matching_loss
from avtok.generator.sampling import SamplerConfig, SampleResult, TextCondition, guided_velocity, sample
from avtok.generator.solvers import euler, shift_sigmas, sigma_grid, unipc
from avtok.generator.twin_dit import TwinDiT, TwinOutput

__all__ = [
    "PRESETS",
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
    "build_config",
    "count_parameters_formula",
    "euler",
    "flow_matching_loss",
    "guided_velocity",
    "sample",
    "shift_sigmas",
    "sigma_grid",
    "unipc",
]
