"""Golden fixtures recorded from the official Ovi code (``$AVTOK_FIXTURES/ovi``, default ``<repo>/../shared/fixtures``).

Fixtures: ``ovi_fixture(name)`` -> (json, io tensors, float32 state dict); ``assert_close(ours, ref, ...)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[4]  # tests/ovi -> tests -> generator -> packages -> root


def fixtures_dir() -> Path:
    return Path(os.environ.get("AVTOK_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures")) / "ovi"


def _load_fixture(name: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(json, io tensors, float32 state dict) of fixture ``name``; skips when the fixtures are absent."""
    folder = fixtures_dir()
    meta_path = folder / f"{name}.json"
    if not meta_path.is_file():
        pytest.skip(f"{meta_path} not found; set AVTOK_FIXTURES to the fixtures folder")
    meta = json.loads(meta_path.read_text())
    io = load_file(str(folder / f"{name}.io.safetensors"))
    sd_path = folder / f"{name}.state_dict.safetensors"
    state = {k: v.float() for k, v in load_file(str(sd_path)).items()} if sd_path.is_file() else {}
    return meta, io, state


def _assert_close(
    ours: torch.Tensor, ref: torch.Tensor, *, rel: float = 2e-5, atol: float | None = None
) -> None:
    """``max|ours - ref| <= rel * max|ref|`` (or ``<= atol``), shapes equal."""
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    err = (ours.double() - ref.double()).abs().max().item()
    bound = atol if atol is not None else rel * ref.double().abs().max().item()
    assert err <= bound, f"max abs err {err:.3g} > {bound:.3g}"


@pytest.fixture(scope="session")
def ovi_fixture():
    return _load_fixture


@pytest.fixture(scope="session")
def assert_close():
    return _assert_close
