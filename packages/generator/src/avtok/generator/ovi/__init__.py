"""The Ovi-style twin-DiT family: config and presets (``config``), the model (``twin_dit``), flow-matching loss
and tasks (``flow``), ODE solvers (``solvers``), guided sampling (``sampling``), the frozen text encoder
(``text``), latent codecs (``latents``), the training recipe (``recipe``) and prompt -> clip (``pipeline``)."""

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
from avtok.generator.ovi.solvers import euler, shift_sigmas, sigma_grid, unipc
from avtok.generator.ovi.twin_dit import TwinDiT, TwinOutput

__all__ = [
    "PRESETS", "LatentSpec", "TwinDiTConfig", "build_config", "count_parameters_formula",
    "TASKS", "FlowBatch", "FlowLoss", "FlowMatchingConfig", "flow_matching_loss", "OviPipeline",
    "SamplerConfig", "SampleResult", "TextCondition", "guided_velocity", "sample",
    "euler", "shift_sigmas", "sigma_grid", "unipc", "TwinDiT", "TwinOutput",
]
