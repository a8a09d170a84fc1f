"""Atomic writes: a reader (or a run resumed after SIGKILL) sees the old content or the new one, never a
torn file.

Files are written under a temporary name beside the target, flushed to disk and renamed over it
(``os.replace`` is atomic on POSIX within one file system). A directory is built under a temporary name and
swapped in: the old one is renamed aside first, so at every moment a complete copy exists on disk.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_directory", "fsync_tree"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file directly under ``path`` and the directory entry itself."""
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | Path, payload: Any, *, indent: int | None = 1) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=indent, default=str))


def atomic_directory(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill a fresh temporary directory with ``write(tmp)`` and swap it in as ``target``.

    An existing ``target`` is renamed aside before the new one is renamed into place and only then removed,
    so a crash leaves either the old complete directory (possibly under ``.<name>.old-<pid>``) or the new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
    return target
