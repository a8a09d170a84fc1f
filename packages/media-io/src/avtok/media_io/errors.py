"""Errors raised by avtok.media_io.

Every error names the offending input (usually the file) and says how to fix it, e.g.
``MediaError("clip.mp4: no audio stream; pass allow_silent=True to get silent audio")``.
"""

from __future__ import annotations

from pathlib import Path


class MediaError(ValueError):
    """A media file or a media argument cannot be used; the message names it and the fix."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class TruncatedMediaError(MediaError):
    """The file ends before its header says: ``ends_at`` seconds decoded, ``claimed`` in the header."""

    def __init__(
        self, message: str, *, path: str | Path | None = None, ends_at: float, claimed: float
    ) -> None:
        self.ends_at, self.claimed = float(ends_at), float(claimed)
        super().__init__(message, path=path)
