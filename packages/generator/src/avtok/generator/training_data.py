"""The generators' training windows, from the one data path (``avtok.media_io.WindowDataset`` through
``avtok.tokenizer.window_data``): ``avtok-generator train`` / ``train-ar`` and the main job read them here.

A data spec is anything :func:`avtok.media_io.sources.parse_source` takes (a file, a folder, a manifest,
tar shards of raw media or of pre-extracted windows, ``sample:<name>``); a bare bundled-sample name
(``concert``) also works. The windows are a shuffled sample of the **train** split (held-out files and
tails never appear), in the codec's format (``codec.window_config()``); files that cannot give a window
are skipped and counted (``stats``: log it with :func:`log_data`), and a source without a single usable
window is a one-line error naming the flag and the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avtok.eval.cli_errors import UserError
from avtok.media_io import AVClip, DataStats, MediaError, WindowConfig
from avtok.media_io.samples import list_samples
from avtok.media_io.sources import parse_source
from avtok.tokenizer.window_data import log_stats, sample_windows_counted

__all__ = ["TrainingWindows", "data_specs", "log_data", "training_windows"]


@dataclass(kw_only=True)
class TrainingWindows:
    clips: list[AVClip]
    labels: list[int]  # per window: its manifest / shard label, else the index of its data spec
    num_classes: int  # labels are in [0, num_classes)
    stats: DataStats  # skipped / failed / adjusted files


def data_specs(names: Sequence[str], *, flag: str = "--data") -> list[str]:
    """The specs as ``parse_source`` takes them: a bare bundled-sample name becomes ``sample:<name>``; a
    name that is neither an existing path, a shard pattern nor a sample is a one-line error."""
    out = []
    for name in names:
        name = str(name)
        if name.startswith("sample:") or ("{" in name and "}" in name) or Path(name).exists():
            out.append(name)
        elif name in list_samples():
            out.append(f"sample:{name}")
        else:
            raise FileNotFoundError(
                f"{flag} {name}: no such file, nor a bundled sample (one of {list_samples()}); pass a media "
                "file, a folder, a manifest, tar shards or sample:<name>"
            )
    return out


def _origins(specs: list[str]) -> dict[str, int]:
    """Media path -> index of the spec that names it (shards of pre-extracted windows: none)."""
    out: dict[str, int] = {}
    for i, spec in enumerate(specs):
        for item in parse_source(spec).items:
            out.setdefault(str(item.path), i)
    return out


def training_windows(specs: Sequence[str], window: WindowConfig, *, count: int, seed: int = 0,
                     flag: str = "--data") -> TrainingWindows:
    """Up to ``count`` shuffled train-split windows of all ``specs`` together, in ``window``'s format."""
    specs = data_specs(specs, flag=flag)
    try:
        samples, stats = sample_windows_counted(specs, window, count=count, seed=seed)
    except MediaError as err:
        raise UserError(f"{flag} {','.join(specs)}: {' '.join(str(err).split())}") from None
    if not samples:
        raise UserError(f"{flag} {','.join(specs)}: no training window could be decoded ({stats.summary()}); "
                        "check the files")
    labelled = any(s.label >= 0 for s in samples)
    origins = {} if labelled else _origins(specs)
    labels = [s.label if labelled else origins.get(s.source, 0) for s in samples]
    return TrainingWindows(clips=[s.clip() for s in samples], labels=[max(0, k) for k in labels],
                           num_classes=max(labels) + 1 if labelled else len(specs), stats=stats)


def log_data(stats: DataStats, tracker, *, echo=print) -> None:
    """The skip / adjustment counts on the console, in the log and in the tracker (``data/<count>``)."""
    echo(f"data: {stats.summary()}")
    log_stats(stats, tracker, step=0, what="generator data")
