"""Loads the shared toy problem (a plain module beside the tests, also used by subprocess workers)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _load_toy():
    name = "avtok_training_toy_problem"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "toy_problem.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def toy():
    return _load_toy()


@pytest.fixture(scope="session")
def workers_dir() -> Path:
    return HERE
