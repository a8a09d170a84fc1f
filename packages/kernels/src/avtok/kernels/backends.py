"""Backend detection, lazy imports and install hints for avtok.kernels.

Every op accepts ``backend="auto" | "torch" | <fast backend>``. ``"torch"`` is always the plain-torch
reference (the test oracle). Optional libraries are probed once (``importlib.util.find_spec`` — nothing
heavy is imported at detection time) and imported only when a backend that needs them is used.

The environment variable ``AVTOK_KERNELS_BACKEND`` (``torch``, ``numba``, ...) overrides what
``backend="auto"`` resolves to, for ops that support that backend; the Hatch test matrix uses it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from types import ModuleType

import torch

__all__ = [
    "BACKEND_ENV_VAR",
    "BackendUnavailableError",
    "INSTALL_HINTS",
    "available_backends",
    "has_module",
    "import_optional",
    "resolve_backend",
]

BACKEND_ENV_VAR = "AVTOK_KERNELS_BACKEND"

# Module probed for each backend, and what to install when it is missing.
_BACKEND_MODULES: dict[str, str] = {
    "numba": "numba",
    "cuda": "numba.cuda",
    "cupy": "cupy",
    "flash": "flash_attn",
    "blas": "scipy",
}
INSTALL_HINTS: dict[str, str] = {
    "numba": "pip install numba",
    "numba.cuda": "pip install 'avtok-kernels[cuda]'  (numba-cuda; needs an NVIDIA driver)",
    "cupy": "pip install 'avtok-kernels[cuda]'  (or cupy-cuda13x to match a CUDA 13 driver)",
    "flash_attn": "pip install flash-attn --no-build-isolation  (source build: needs nvcc and a GPU)",
    "scipy": "pip install scipy",
}


class BackendUnavailableError(RuntimeError):
    """A requested backend cannot run here (library missing or wrong device)."""


@functools.cache
def has_module(name: str) -> bool:
    """True when ``name`` is importable (checked once, without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def import_optional(name: str, *, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise with the install command that provides it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        hint = INSTALL_HINTS.get(name, f"pip install {name}")
        raise BackendUnavailableError(f"{purpose} needs the optional module {name!r}: {hint}") from err


@functools.cache
def _cuda_usable() -> bool:
    return torch.cuda.is_available()


def available_backends() -> dict[str, bool]:
    """Which optional backends could be imported here (not whether they suit a given tensor)."""
    found = {name: has_module(mod) for name, mod in _BACKEND_MODULES.items()}
    found["torch"] = True
    found["cuda"] = found["cuda"] and _cuda_usable()
    return found


def _env_backend() -> str | None:
    value = os.environ.get(BACKEND_ENV_VAR, "").strip().lower()
    return value or None


def resolve_backend(
    op: str,
    backend: str,
    *,
    supported: tuple[str, ...],
    auto_order: tuple[str, ...],
    usable: dict[str, bool],
) -> str:
    """Pick the backend for one call of ``op``.

    ``supported`` lists every backend name ``op`` understands; ``auto_order`` the fast ones tried by
    ``"auto"`` (the torch reference is the last resort); ``usable`` says which of them can run for
    this call (library present and tensor on the right device).
    """
    if backend == "auto":
        forced = _env_backend()
        if forced is not None and forced in supported and usable.get(forced, forced == "torch"):
            return forced
        for name in auto_order:
            if usable.get(name, False):
                return name
        return "torch"
    if backend not in supported:
        raise ValueError(
            f"{op}: unknown backend={backend!r}; pass one of {('auto', *supported)}"
        )
    if backend != "torch" and not usable.get(backend, False):
        module = _BACKEND_MODULES.get(backend, backend)
        hint = INSTALL_HINTS.get(module, "")
        raise BackendUnavailableError(
            f"{op}: backend={backend!r} cannot run for this input (module {module!r} missing, or the "
            f"tensor is on a device it does not serve). Install: {hint or 'n/a'}; or pass backend='auto'."
        )
    return backend
