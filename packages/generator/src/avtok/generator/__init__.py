"""avtok.generator."""

from avtok.generator.__about__ import __version__

__all__ = ["__version__"]
