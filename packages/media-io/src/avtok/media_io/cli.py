"""``avtok-media-io``: pre-extract training windows into tar shards (``avtok-media-io shard --help``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from avtok.media_io.errors import MediaError
from avtok.media_io.spectral import MelConfig
from avtok.media_io.window_plan import WindowConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def main() -> None:
    """avtok media tools."""


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        hw = [int(p) for p in parts if p.strip()]
    except ValueError:
        hw = []
    if len(hw) not in (1, 2):
        raise typer.BadParameter(f"--size {text!r}: pass one int (square) or HxW, e.g. 128 or 128x160")
    return (hw[0], hw[-1])


@app.command()
def shard(
    data: list[str] = typer.Option(..., "--data", help="file, folder, manifest (.csv/.jsonl/.parquet/.txt), "
                                   "tar shards of raw media, or sample:<name>; repeat for several"),
    out: Path = typer.Option(..., "--out", help="output folder (tar shards + index.json)"),
    fps: float = typer.Option(16.0, help="frame rate of the windows"),
    size: str = typer.Option("128", help="frame size: an int (square) or HxW"),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="audio sample rate"),
    channels: int = typer.Option(1, help="audio channels"),
    window_seconds: float = typer.Option(1.0, "--window-seconds", help="window length (rounded to frames)"),
    stride_seconds: float | None = typer.Option(None, "--stride-seconds", help="hop (default: the window)"),
    resize_mode: str = typer.Option("crop", help="crop (keep aspect, centre cut) or resize"),
    mel: bool = typer.Option(False, help="also store each window's log-mel (HiFi-GAN parameters at this rate)"),
    allow_silent: bool = typer.Option(False, help="keep files without audio (silent windows)"),
    holdout_seconds: float = typer.Option(0.0, help="the last seconds of each file go to heldout-*.tar"),
    holdout_fraction: float = typer.Option(0.0, help="this fraction of files goes to heldout-*.tar whole"),
    shard_size: int = typer.Option(256, help="windows per shard"),
    processes: int = typer.Option(max(1, (os.cpu_count() or 2) - 1), help="parallel shard writers"),
) -> None:
    """Decode every window of DATA once into WebDataset-style tar shards that WindowDataset reads."""
    from avtok.media_io.shards import write_shards

    frames = round(window_seconds * fps)
    stride = None if stride_seconds is None else max(1, round(stride_seconds * fps))
    try:
        mel_cfg = MelConfig(sample_rate=sample_rate, f_max=min(8000.0, sample_rate / 2)) if mel else None
        cfg = WindowConfig(
            window_frames=max(1, frames), fps=fps, size=_size(size), resize_mode=resize_mode,
            sample_rate=sample_rate, channels=channels, stride_frames=stride, allow_silent=allow_silent,
            mel=mel_cfg, holdout_seconds=holdout_seconds, holdout_fraction=holdout_fraction,
        )
        index = write_shards(data, out, cfg, shard_size=shard_size, processes=processes, progress=True)
    except MediaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {index}")


if __name__ == "__main__":
    app()
