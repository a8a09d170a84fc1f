"""The main job's typed config and its presets (one source of truth, logged whole to MLflow as params)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avtok.generator.ovi.latents import PooledLatentConfig

CONCERT = "sample:concert"
CONCERT_PROMPT = "a live band on stage <AUDCAP>rock band, drums and guitars, crowd<ENDAUDCAP>"
GENERIC_PROMPT = "a video with its sound"


@dataclass(kw_only=True, frozen=True)
class JobPreset:
    """Which model sizes the job trains: an AV tokenizer preset, a twin-DiT preset and its latents."""

    tokenizer: str  # avtok.tokenizer AV preset (tiny | paper)
    generator: str  # avtok.generator preset (tiny | small | ovi-11b)
    generator_overrides: dict = field(default_factory=dict)  # build_config overrides for the pooled latents
    latents: PooledLatentConfig = field(default_factory=PooledLatentConfig)
    tokenizer_batch: int = 8
    generator_batch: int = 4
    generator_lr: float = 3e-3


def _tiny() -> JobPreset:
    # 8 frames of 32x32 + 0.56 s of mel per tokenizer window; a 0.37M twin DiT on 2 s of 8x8x3 + 21x80 latents
    return JobPreset(tokenizer="tiny", generator="tiny", latents=PooledLatentConfig(seconds=2.0))


def _paper() -> JobPreset:
    # AVTok's 208M tokenizer (16 frames 128x128 + 80x384 mel) and the 81M "small" twin DiT on 16x16x3
    # pooled latents of 4 s clips: GPU sizes (use --device cuda and a --minutes budget of an hour or more)
    return JobPreset(
        tokenizer="paper",
        generator="small",
        generator_overrides={"video_channels": 3, "audio_channels": 80, "video_patch": (1, 2, 2)},
        latents=PooledLatentConfig(seconds=4.0, size=64),
        tokenizer_batch=16,
        generator_batch=16,
        generator_lr=3e-4,
    )


PRESETS = {"tiny": _tiny, "paper": _paper}


@dataclass(kw_only=True)
class DemoConfig:
    """Everything the main job does. Budgets are wall-clock; ``max_steps`` caps both models (quick runs)."""

    data: str = CONCERT  # sample:<name>, a media file, a folder of videos or a .txt manifest
    preset: str = "tiny"
    minutes: float = (
        7.0  # training budget: tokenizer_share of it for the tokenizer, the rest for the generator
    )
    tokenizer_share: float = 0.55
    max_steps: int | None = None  # None: the budget alone bounds training
    device: str = "cpu"
    holdout_seconds: float = 10.0  # the last seconds of every clip are never trained on
    eval_windows: int = 16  # held-out tokenizer windows scored
    player_windows: int = 8  # consecutive held-out tokenizer windows in the report's players
    samples: int = 4  # generated clips per task
    sample_steps: int = 25  # UniPC steps
    prompt: str | None = None  # None: the concert prompt for sample:concert, a generic one otherwise
    frame_stride: int = 2  # frame FID uses every frame_stride-th frame (Inception dominates CPU eval time)
    # the h264+aac and HiFi-GAN "codec ceiling" rows, the untrained-generator floor and latent-ceiling sets
    reference_rows: bool = True
    seed: int = 0
    out: str = "out/demo"
    cache: str = "runs/demo"  # checkpoints + cached preparation, reused by the next run unless fresh
    fresh: bool = False
    experiment: str = "avtok-demo"
    track: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r}: choose one of {sorted(PRESETS)}")
        if not self.minutes > 0 or not 0 < self.tokenizer_share < 1:
            raise ValueError(f"--minutes {self.minutes}: must be > 0 (tokenizer_share in (0, 1))")
        if self.samples < 2 or self.eval_windows < 2:
            raise ValueError(
                f"--samples {self.samples} / --eval-windows {self.eval_windows}: Fréchet distances "
                "(frame FID, FAD) need at least 2 clips per set; pass 2 or more"
            )
        if self.sample_steps < 1 or self.frame_stride < 1:
            raise ValueError("--sample-steps and --frame-stride must be >= 1")

    @property
    def job(self) -> JobPreset:
        return PRESETS[self.preset]()

    @property
    def text(self) -> str:
        if self.prompt is not None:
            return self.prompt
        return CONCERT_PROMPT if self.data == CONCERT else GENERIC_PROMPT

    def cache_dir(self) -> Path:
        """One folder per (data, preset, hold-out, training budget, seed): a run with other data or another
        budget trains its own models instead of reusing these."""
        data = self.data if self.data.startswith("sample:") else str(Path(self.data).resolve())
        budget = [self.minutes, self.tokenizer_share, self.max_steps]
        key = json.dumps([data, self.preset, self.holdout_seconds, budget, self.seed])
        return Path(self.cache) / f"{self.preset}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"

    def params(self) -> dict[str, object]:
        out = {
            k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v) for k, v in asdict(self).items()
        }
        job = asdict(self.job)
        out.update(
            {f"job.{k}": json.dumps(v) if isinstance(v, (dict, list, tuple)) else v for k, v in job.items()}
        )
        out["prompt"] = self.text
        return out
