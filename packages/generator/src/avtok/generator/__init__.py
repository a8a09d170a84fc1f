"""avtok.generator: Ovi-style twin-DiT audio-video generator (flow matching, Euler / UniPC, per-modality CFG)
and an autoregressive generator over AVTok's unified audio-video tokens (a2v, v2a, class-conditional joint).

Families are subpackages: :mod:`avtok.generator.ovi` (the twin DiT) and :mod:`avtok.generator.ar`; each holds
its config, model, sampling and training recipe; :mod:`avtok.generator.recipes` is the one place that builds a
generator ``Trainer`` (``train_generator``, ``train_ar``); :mod:`avtok.generator.job` is the main job
(console command ``avtok``). The public names below are re-exported for convenience.
"""

from avtok.generator import ar, ovi
from avtok.generator.__about__ import __version__
from avtok.generator.ar import *  # noqa: F403  (the AR family's public names)
from avtok.generator.ovi import *  # noqa: F403  (the twin-DiT family's public names)

__all__ = ["__version__", *ar.__all__, *ovi.__all__]
