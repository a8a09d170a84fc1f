"""What a tracked run records about where it ran: git commit and dirty flag of the avtok checkout, the
version of every installed avtok package, torch / CUDA versions, the device and the command line.

Used by :class:`avtok.eval.tracking.MlflowTracker` as run tags; plain data, no MLflow import here.
"""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["AVTOK_DISTRIBUTIONS", "run_tags", "git_state", "package_versions", "machine_tags"]

AVTOK_DISTRIBUTIONS = (
    "avtok-media-io",
    "avtok-kernels",
    "avtok-eval",
    "avtok-train",
    "avtok-tokenizer",
    "avtok-generator",
)


def _git(source: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(source.parent), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(source: Path | None = None) -> dict[str, str]:
    """Commit and dirty flag of the git checkout holding ``source`` (default: this file), but only when
    that checkout tracks the file: an installed wheel inside some other repository records nothing."""
    source = Path(source or __file__).resolve()
    if _git(source, "ls-files", "--error-unmatch", source.name) is None:
        return {}
    commit = _git(source, "rev-parse", "HEAD")
    if commit is None:
        return {}
    dirty = _git(source, "status", "--porcelain", "--untracked-files=no")
    return {
        "mlflow.source.git.commit": commit,
        "avtok.git_commit": commit,
        "avtok.git_dirty": "unknown" if dirty is None else str(bool(dirty)).lower(),
    }


def package_versions() -> dict[str, str]:
    """``avtok.version.<distribution>`` for every installed avtok distribution."""
    out = {}
    for name in AVTOK_DISTRIBUTIONS:
        try:
            out[f"avtok.version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine_tags(device: str | None = None) -> dict[str, str]:
    """torch / CUDA versions, the accelerator's name, Python and the host platform."""
    import torch

    cuda = torch.version.cuda or "none"
    tags = {
        "avtok.torch": torch.__version__,
        "avtok.cuda": cuda,
        "avtok.python": platform.python_version(),
        "avtok.platform": platform.platform(terse=True),
    }
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tags["avtok.device"] = device
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        tags["avtok.gpu"] = torch.cuda.get_device_name(index)
    return tags


def run_tags(*, device: str | None = None, argv: list[str] | None = None) -> dict[str, str]:
    """Every tag above plus the command line (``avtok.command``)."""
    argv = sys.argv if argv is None else argv
    command = " ".join([Path(argv[0]).name, *map(shlex.quote, argv[1:])]) if argv else ""
    return {**git_state(), **package_versions(), **machine_tags(device), "avtok.command": command[:5000]}
