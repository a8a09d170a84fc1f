"""PyAV, imported on first use.

Only decoding and encoding (``read_clip``, ``read_audio``, ``probe``, ``write_clip``, the window datasets)
need PyAV; clips as tensors, spectra, patching and the vocoder do not. Importing it lazily keeps
``import avtok.media_io`` (and every package above it) working on machines without PyAV, such as the GPU
image (tools/gpu_check.py checks this with PyAV blocked).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["av"]


class _LazyPyAV:
    """Stands in for the ``av`` module: the first attribute access imports it (or says how to install it)."""

    _module: ModuleType | None = None

    def __getattr__(self, name: str) -> Any:
        if self._module is None:
            try:
                type(self)._module = importlib.import_module("av")
            except ImportError as err:
                raise ImportError(
                    "reading or writing media needs PyAV (module 'av'), which is not installed: "
                    "pip install 'av>=14'"
                ) from err
        return getattr(self._module, name)


av = _LazyPyAV()
