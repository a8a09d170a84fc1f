"""Backend resolution: auto order, the env override, install hints for missing libraries."""

from __future__ import annotations

import pytest

from avtok.kernels import BACKEND_ENV_VAR, BackendUnavailableError, available_backends
from avtok.kernels.backends import has_module, import_optional, resolve_backend

SUPPORTED = ("torch", "numba", "cupy")


def _resolve(backend, usable):
    return resolve_backend("op", backend, supported=SUPPORTED, auto_order=("numba", "cupy"), usable=usable)


def test_auto_picks_first_usable_then_reference(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)
    assert _resolve("auto", {"numba": True, "cupy": True}) == "numba"
    assert _resolve("auto", {"numba": False, "cupy": True}) == "cupy"
    assert _resolve("auto", {}) == "torch"


def test_env_override_applies_only_when_usable(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV_VAR, "torch")
    assert _resolve("auto", {"numba": True}) == "torch"
    monkeypatch.setenv(BACKEND_ENV_VAR, "cupy")
    assert _resolve("auto", {"numba": True, "cupy": False}) == "numba"  # not usable here: ignored
    monkeypatch.setenv(BACKEND_ENV_VAR, "flash")
    assert _resolve("auto", {"numba": True}) == "numba"  # not an option of this op: ignored
    assert _resolve("torch", {"numba": True}) == "torch"  # explicit choice wins over the env


def test_explicit_unusable_backend_gives_install_hint():
    with pytest.raises(BackendUnavailableError, match="pip install"):
        _resolve("cupy", {"cupy": False})
    with pytest.raises(ValueError, match="pass one of"):
        _resolve("metal", {})


def test_import_optional_names_the_fix():
    if not has_module("flash_attn"):
        with pytest.raises(BackendUnavailableError, match=r"flash_attn.*pip install flash-attn"):
            import_optional("flash_attn", purpose="attention backend='flash'")
    with pytest.raises(BackendUnavailableError, match="pip install avtok_no_such_module"):
        import_optional("avtok_no_such_module", purpose="test")
    assert import_optional("numba", purpose="test").__name__ == "numba"
    found = available_backends()
    assert found["torch"] and found["numba"] and set(found) >= {"cuda", "cupy", "flash", "blas"}
