"""A run folder's identity and ownership: which run a checkpoint folder holds, and which process writes it.

``claim_run_folder(folder, identity, resume=..., overwrite=...)`` is called by every training entry point
before anything is written. It

- refuses a folder another live process is training into (``run.lock`` holds the owner's PID and host;
  a lock whose process is gone on this host is stale and taken over with a warning);
- writes ``run.json`` (the run's identity: a hash of the config fields that define the model and its
  data, plus those fields) when it creates the run;
- refuses a folder that holds a run unless ``resume`` (same identity, else an error naming both configs)
  or ``overwrite`` (the old run is renamed aside to ``<folder>.replaced-<time>``, never deleted).

Fields that only say how long or where a run trains (``max_steps``, ``minutes``, device, …) are left out of
the identity by the caller, so a resumed run may extend its budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from avtok.train.atomic import atomic_write_json

__all__ = [
    "IDENTITY_NAME",
    "LOCK_NAME",
    "RunFolderError",
    "RunLock",
    "claim_on_main",
    "claim_run_folder",
    "identity_hash",
    "read_identity",
]

log = logging.getLogger("avtok.training")
IDENTITY_NAME = "run.json"
LOCK_NAME = "run.lock"
_HELD: dict[Path, RunLock] = {}  # folders this process holds (a nested claim of the same folder is a no-op)


class RunFolderError(ValueError):
    """The folder holds another run, another process trains into it, or its identity cannot be read."""


def identity_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(dict(config), sort_keys=True, default=str).encode()).hexdigest()[:12]


def read_identity(folder: str | Path) -> dict[str, Any] | None:
    """``run.json`` of ``folder`` (None when absent); an unreadable one is a :class:`RunFolderError`."""
    path = Path(folder) / IDENTITY_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunFolderError(
            f"{path}: unreadable run identity ({err}); pass --overwrite to move the folder "
            "aside and start a new run"
        ) from err


@dataclass
class RunLock:
    """This process's hold on a run folder; ``release()`` (or leaving the ``with`` block) frees it."""

    folder: Path
    path: Path | None  # None: a nested claim (the outer one releases)

    def release(self) -> None:
        if self.path is None:
            return
        _HELD.pop(self.folder, None)
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
        self.path = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _check_lock(folder: Path, flag: str = "--checkpoint-dir") -> None:
    """Raise when a live process holds ``folder``; remove a stale lock (dead PID on this host)."""
    path = folder / LOCK_NAME
    if not path.exists():
        return
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        owner = {}
    pid, host = owner.get("pid"), owner.get("host")
    if isinstance(pid, int) and host == socket.gethostname() and not _pid_alive(pid):
        log.warning("%s: stale lock of process %d (no longer running) removed", path, pid)
        path.unlink(missing_ok=True)
        return
    who = f"process {pid} on {host} since {owner.get('started', '?')}" if pid else "an unknown process"
    raise RunFolderError(
        f"{folder}: another training run is writing here ({who}); wait for it to finish or "
        f"pass another {flag} (if no such process is alive, delete {path})"
    )


def _take_lock(folder: Path, flag: str) -> RunLock:
    path = folder / LOCK_NAME
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:  # another process won the race between the check and here
        _check_lock(folder, flag)
        raise
    with os.fdopen(fd, "w") as handle:
        json.dump(owner, handle)
    lock = RunLock(folder=folder, path=path)
    _HELD[folder] = lock
    return lock


def _describe(identity: Mapping[str, Any] | None) -> str:
    if identity is None:
        return "a run without run.json"
    cfg = identity.get("config", {})
    described = json.dumps(cfg, sort_keys=True)
    return f"{identity.get('summary', '?')} (config {identity.get('hash', '?')}: {described})"


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    diff = [f"{k} {old.get(k, '-')!r} -> {new.get(k, '-')!r}" for k in keys if old.get(k) != new.get(k)]
    return ", ".join(diff)


def _move_aside(folder: Path) -> Path:
    aside = folder.with_name(f"{folder.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        n += 1
        aside = folder.with_name(f"{folder.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    os.replace(folder, aside)
    log.warning("%s: the previous run was moved aside to %s (nothing deleted)", folder, aside)
    return aside


def _holds_run(folder: Path) -> bool:
    return folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir())


def claim_run_folder(
    folder: str | Path,
    config: Mapping[str, Any],
    *,
    summary: str,
    resume: bool = False,
    overwrite: bool = False,
    flag: str = "--checkpoint-dir",
) -> RunLock:
    """Check and lock ``folder`` for a run whose identity is ``config`` (see the module docstring).

    ``summary`` names the run for people (``"tokenizer tiny-av vfal on sample:concert"``); ``flag`` is the
    command's option naming the folder (for the errors). Returns the lock; release it (``with`` block) when
    training ends. Raises :class:`RunFolderError` with the fix.
    """
    folder = Path(folder).absolute()
    if folder in _HELD:  # this process claimed it already (e.g. the CLI before the runner)
        return RunLock(folder=folder, path=None)
    if resume and overwrite:
        raise RunFolderError(
            f"{folder}: --resume continues the run there, --overwrite moves it aside; pass one"
        )
    new = {"hash": identity_hash(config), "summary": summary, "config": dict(config)}
    if folder.is_dir():
        _check_lock(folder, flag)
    if _holds_run(folder):
        old = read_identity(folder) if not overwrite else None
        if overwrite:
            _move_aside(folder)
        elif not resume:
            raise RunFolderError(
                f"{folder}: holds {_describe(old) if old else 'files of an earlier run'}; pass --resume to "
                f"continue it, --overwrite to move it aside (nothing is deleted), or another {flag}"
            )
        elif old is None:
            log.warning(
                "%s: no %s (written by an older avtok); resuming it as %s", folder, IDENTITY_NAME, summary
            )
        elif old.get("hash") != new["hash"]:
            raise RunFolderError(
                f"{folder}: --resume of a different run: the folder holds {old.get('summary')} "
                f"(config {old.get('hash')}), this command is {summary} (config {new['hash']}); differing: "
                f"{_differences(old.get('config', {}), config)}. Pass the options of that run to resume it, "
                f"--overwrite to move it aside, or another {flag}"
            )
    folder.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(folder, flag)
    if read_identity(folder) is None:
        atomic_write_json(folder / IDENTITY_NAME, dict(new, created=time.strftime("%Y-%m-%d %H:%M:%S")))
    return lock


def claim_on_main(folder: str | Path, config: Mapping[str, Any], *, summary: str, resume: bool = False,
                  overwrite: bool = False, flag: str = "--checkpoint-dir") -> AbstractContextManager:
    """:func:`claim_run_folder` on rank 0 only (under torch.distributed every rank raises its error, so
    all stop together); a context manager that releases the lock."""
    from avtok.train import distributed as dist

    info = dist.dist_info()
    lock, error = None, None
    if info.rank == 0:
        try:
            lock = claim_run_folder(folder, config, summary=summary, resume=resume, overwrite=overwrite,
                                    flag=flag)
        except RunFolderError as err:
            error = str(err)
    if info.enabled:
        box = [error]
        torch.distributed.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise RunFolderError(error)
    return lock if lock is not None else nullcontext()
