"""Fault-injection suite (issue 28): real media cut short from the bundled concert clip, tiny presets, a
few steps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from avtok.media_io import read_clip, sample_path, write_clip
from avtok.tokenizer.recipes import RunConfig


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared 2-core box
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _warnings_visible(caplog):
    caplog.set_level(logging.WARNING, logger="avtok.training")


@pytest.fixture(scope="session")
def clip3s(tmp_path_factory) -> Path:
    """3 s of the real concert clip with its stereo audio, as an mp4."""
    clip = read_clip(sample_path("concert"), start=30.0, duration=3.0)
    return write_clip(tmp_path_factory.mktemp("media") / "concert_3s.mp4", clip)


def _tiny_run(data: Path, run: Path, **changes) -> RunConfig:
    """The fastest real tokenizer run: tiny AV, one stage (vanilla), L1/mel losses only, 4 steps."""
    opts = dict(
        family="av",
        preset="tiny",
        schedule="vanilla",
        data=str(data),
        holdout_seconds=1.0,
        max_steps=4,
        batch_size=2,
        warmup_steps=50,
        eval_every=1000,
        eval_windows=1,
        perceptual=False,
        mrstft=False,
        artifacts=False,
        checkpoint_dir=run,
    )
    opts.update(changes)
    return RunConfig(**opts)


def _cli_args(data: Path, run: Path, *extra: str) -> list[str]:
    """``avtok-tokenizer train`` arguments of the same tiny run."""
    return [
        "train",
        "--preset",
        "tiny-av",
        "--data",
        str(data),
        "--schedule",
        "vanilla",
        "--holdout-seconds",
        "1",
        "--checkpoint-dir",
        str(run),
        "--batch-size",
        "2",
        "--eval-windows",
        "1",
        "--no-perceptual",
        "--no-mrstft",
        "--no-report",
        "--max-steps",
        "4",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_run():
    """Factory: ``tiny_run(data, run_dir, **RunConfig changes)``."""
    return _tiny_run


@pytest.fixture(scope="session")
def cli_args():
    """Factory: ``cli_args(data, run_dir, *extra flags)`` for ``avtok-tokenizer train``."""
    return _cli_args
