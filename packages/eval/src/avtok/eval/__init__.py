"""avtok.eval: metrics, feature backbones, evaluation drivers and experiment tracking.

Heavy or optional pieces (Inception, aiSFX, I3D, LPIPS, MLflow) load only when used.
"""

from avtok.eval.__about__ import __version__
from avtok.eval.audio_metrics import MRSTFTConfig, mel_l1, mrstft_distance, si_sdr
from avtok.eval.av_sync import OnsetAlignConfig, OnsetAlignResult, onset_alignment
from avtok.eval.baselines import (
    IdentityBaseline,
    MeanFrameSilenceBaseline,
    RepeatFirstFrameBaseline,
    default_baselines,
)
from avtok.eval.frechet import FrechetStats, GaussianStats, frechet_distance
from avtok.eval.generation import GenerationConfig, evaluate_generation
from avtok.eval.image_metrics import psnr, ssim
from avtok.eval.protocols import Generator, Reconstructor, Tokenizer, TokenizerReconstructor
from avtok.eval.reconstruction import ReconstructionConfig, ReconstructionReport, evaluate_reconstruction
from avtok.eval.tokens import Throughput, ThroughputMeter, TokenStats, peak_rss_mb, token_stats
from avtok.eval.tracking import MlflowTracker, NullTracker, Tracker, compare_runs

__all__ = [
    "__version__",
    "psnr", "ssim",
    "si_sdr", "mrstft_distance", "MRSTFTConfig", "mel_l1",
    "FrechetStats", "GaussianStats", "frechet_distance",
    "onset_alignment", "OnsetAlignConfig", "OnsetAlignResult",
    "token_stats", "TokenStats", "ThroughputMeter", "Throughput", "peak_rss_mb",
    "Reconstructor", "Tokenizer", "Generator", "TokenizerReconstructor",
    "IdentityBaseline", "MeanFrameSilenceBaseline", "RepeatFirstFrameBaseline", "default_baselines",
    "evaluate_reconstruction", "ReconstructionConfig", "ReconstructionReport",
    "evaluate_generation", "GenerationConfig",
    "Tracker", "NullTracker", "MlflowTracker", "compare_runs",
]
