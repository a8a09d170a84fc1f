"""Atomic checkpoints: weights as safetensors, scalar state as JSON, optimizer via torch.save.

Layout of one checkpoint (a directory, written under a temporary name and renamed in one step, so a
crash or SIGKILL leaves either the previous checkpoint or the complete new one, never a torn one)::

    <dir>/step-00001000/
        model.safetensors      model weights (full, unsharded)
        ema.safetensors        EMA shadow weights (when EMA is on)
        optimizer.pt           optimizer.state_dict(); read back with torch.load(weights_only=True)
        rng.safetensors        torch / CUDA generator states, one set per rank
        state.json             step, scheduler, data position, counters, python/numpy RNG, best metric
    <dir>/best.json            {"step": ..., "value": ...} of the best checkpoint (kept beyond keep_last)

"Newest" means most recently *written* (``state.json``'s ``seq``, one more than any checkpoint already in the
folder), not highest step: retention keeps the ``keep_last`` newest checkpoints of the run that is writing,
so higher-numbered steps left by an earlier run never outlive this run's. ``load()`` validates every file and
falls back to the newest intact checkpoint, with a warning naming the bad file.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from avtok.train.atomic import atomic_write_json, fsync_tree

__all__ = ["Checkpoint", "CheckpointManager", "CorruptCheckpointError", "capture_rng", "restore_rng"]

log = logging.getLogger("avtok.training")
_PREFIX = "step-"


class CorruptCheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not what it should be; the message names the file."""


@dataclass(kw_only=True)
class Checkpoint:
    """Everything needed to continue a run exactly (what :meth:`CheckpointManager.load` returns)."""

    step: int
    model: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    optimizer: dict[str, Any]
    state: dict[str, Any]  # JSON scalars: scheduler, data position, counters, best, elapsed time
    rng: list[dict[str, Any]] = field(default_factory=list)  # one entry per rank
    path: Path | None = None


def capture_rng() -> dict[str, Any]:
    """This process's generator states: torch CPU, every CUDA device, python ``random``, numpy."""
    out: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _jsonable(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        out["numpy"] = [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    except ImportError:  # pragma: no cover - numpy ships with torch's usual installs
        pass
    return out


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(_tupled(state["python"]))
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _jsonable(x: Any) -> Any:
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tupled(x: Any) -> Any:
    return tuple(_tupled(v) for v in x) if isinstance(x, list) else x


def _save_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    seen: set[int] = set()
    flat = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.data_ptr() in seen:  # tied weights: safetensors refuses shared storage
            t = t.clone()
        seen.add(t.data_ptr())
        flat[name] = t
    save_file(flat, str(path))


def _rng_tensors(rng: list[dict[str, Any]]) -> dict[str, Tensor]:
    out = {}
    for rank, entry in enumerate(rng):
        out[f"rank{rank}.torch"] = entry["torch"]
        for i, s in enumerate(entry.get("cuda", [])):
            out[f"rank{rank}.cuda{i}"] = s
    return out


class CheckpointManager:
    """Writes, lists, prunes (keep the K newest and the best) and reads checkpoints under ``directory``."""

    def __init__(self, directory: str | Path, *, keep_last: int = 3, keep_best: bool = True,
                 best_mode: str = "min") -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last={keep_last}: keep at least the latest checkpoint (>= 1)")
        self.directory = Path(directory)
        self.keep_last, self.keep_best, self.best_mode = keep_last, keep_best, best_mode

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints on disk, ascending (temporary directories are ignored)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name[len(_PREFIX):]) for p in self.directory.iterdir()
                      if p.is_dir() and p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit())

    def path(self, step: int) -> Path:
        return self.directory / f"{_PREFIX}{step:08d}"

    def _seq(self, step: int) -> int:
        """Write order of a checkpoint (-1: unreadable or written before ``seq`` existed)."""
        try:
            return int(json.loads((self.path(step) / "state.json").read_text()).get("seq", -1))
        except (OSError, ValueError, TypeError):
            return -1

    def newest_first(self) -> list[int]:
        """Steps ordered newest-written first (ties, e.g. old checkpoints without ``seq``: higher step
        first)."""
        return sorted(self.steps(), key=lambda s: (self._seq(s), s), reverse=True)

    def latest(self) -> Path | None:
        order = self.newest_first()
        return self.path(order[0]) if order else None

    def best(self) -> dict[str, Any] | None:
        f = self.directory / "best.json"
        try:
            return json.loads(f.read_text()) if f.is_file() else None
        except ValueError:
            log.warning("%s: unreadable (%s); the best checkpoint is forgotten", f, "invalid JSON")
            return None

    def is_better(self, value: float) -> bool:
        best = self.best()
        if best is None:
            return True
        return value < best["value"] if self.best_mode == "min" else value > best["value"]

    def save(self, ckpt: Checkpoint, *, metric: float | None = None) -> Path:
        """Write ``ckpt`` atomically; record it as best when ``metric`` improves; prune old ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(ckpt.step)
        seq = 1 + max((self._seq(s) for s in self.steps()), default=0)
        tmp = self.directory / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _save_tensors(ckpt.model, tmp / "model.safetensors")
        if ckpt.ema is not None:
            _save_tensors(ckpt.ema, tmp / "ema.safetensors")
        torch.save(ckpt.optimizer, tmp / "optimizer.pt")
        _save_tensors(_rng_tensors(ckpt.rng), tmp / "rng.safetensors")
        scalars = [{k: v for k, v in r.items() if k not in ("torch", "cuda")} for r in ckpt.rng]
        state = dict(ckpt.state, step=ckpt.step, seq=seq, rng_scalars=scalars)
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        fsync_tree(tmp)
        if final.exists():  # re-saving a step (e.g. the final step after a resume): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        if metric is not None and self.is_better(metric):
            atomic_write_json(self.directory / "best.json", {"step": ckpt.step, "value": float(metric)})
        self.prune()
        return final

    def prune(self) -> None:
        """Remove all but the ``keep_last`` newest-written checkpoints (and the best)."""
        order = self.newest_first()
        keep = set(order[:self.keep_last])
        best = self.best() if self.keep_best else None
        if best is not None:
            keep.add(int(best["step"]))
        for step in order:
            if step not in keep:
                shutil.rmtree(self.path(step), ignore_errors=True)

    def load(self, path: str | Path | None = None) -> Checkpoint:
        """Read a checkpoint; tensors load on CPU and nothing executes code.

        With ``path`` that checkpoint or a :class:`CorruptCheckpointError` naming the bad file. Without it the
        newest intact checkpoint: a damaged newer one is skipped with a warning naming the file.
        """
        if path is not None:
            return _read(Path(path))
        order = self.newest_first()
        if not order:
            raise FileNotFoundError(f"no complete checkpoint at {self.directory}; train first or pass "
                                    "the path of a step-XXXXXXXX directory")
        errors = []
        for step in order:
            try:
                ckpt = _read(self.path(step))
            except CorruptCheckpointError as err:
                errors.append(str(err))
                log.warning("%s; falling back to the previous checkpoint", err)
                continue
            if errors:
                log.warning("loaded %s instead of the newer damaged checkpoint(s)", ckpt.path)
            return ckpt
        raise CorruptCheckpointError(f"{self.directory}: no intact checkpoint ({'; '.join(errors)}); pass "
                                     "--overwrite to move the run aside and train again")


def _read_file(path: Path, reader):
    if not path.is_file():
        raise CorruptCheckpointError(f"{path}: missing from the checkpoint")
    try:
        return reader(path)
    except Exception as err:  # noqa: BLE001 - safetensors, zip, pickle and JSON readers raise their own types
        raise CorruptCheckpointError(f"{path}: unreadable ({type(err).__name__}: {err})") from err


def _read(path: Path) -> Checkpoint:
    """One checkpoint directory, every file validated (a torn or truncated file names itself)."""
    if not path.is_dir():
        raise FileNotFoundError(f"no complete checkpoint at {path}; train first or pass the path of a "
                                "step-XXXXXXXX directory")
    state = _read_file(path / "state.json", lambda f: json.loads(f.read_text()))
    if not isinstance(state, dict) or "step" not in state or "rng_scalars" not in state:
        raise CorruptCheckpointError(f"{path / 'state.json'}: not a checkpoint state (no step / rng_scalars)")
    rng_t = _read_file(path / "rng.safetensors", lambda f: load_file(str(f)))
    rng = []
    for rank, scalars in enumerate(state.pop("rng_scalars")):
        if f"rank{rank}.torch" not in rng_t:
            raise CorruptCheckpointError(f"{path / 'rng.safetensors'}: no generator state of rank {rank}")
        entry = dict(scalars, torch=rng_t[f"rank{rank}.torch"])
        cuda = sorted(k for k in rng_t if k.startswith(f"rank{rank}.cuda"))
        if cuda:
            entry["cuda"] = [rng_t[k] for k in sorted(cuda, key=lambda k: int(k.split("cuda")[1]))]
        rng.append(entry)
    model = _read_file(path / "model.safetensors", lambda f: load_file(str(f)))
    ema_file = path / "ema.safetensors"
    ema = _read_file(ema_file, lambda f: load_file(str(f))) if ema_file.exists() else None
    optimizer = _read_file(path / "optimizer.pt",
                           lambda f: torch.load(f, map_location="cpu", weights_only=True))
    return Checkpoint(step=int(state["step"]), model=model, ema=ema, optimizer=optimizer, state=state,
                      rng=rng, path=path)
