"""``avtok-media-io``: pre-extract training windows into tar shards (``avtok-media-io shard --help``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from avtok.media_io.errors import MediaError
from avtok.media_io.spectral import MelConfig
from avtok.media_io.window_plan import WindowConfig

_DATA_HELP = "file, folder, manifest, raw-media tar shards or sample:<name>; repeat for several"
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
    data: Annotated[list[str], typer.Option("--data", help=_DATA_HELP)],
    out: Annotated[Path, typer.Option("--out", help="output folder (tar shards + index.json)")],
    fps: Annotated[float, typer.Option(help="frame rate of the windows")] = 16.0,
    size: Annotated[str, typer.Option(help="frame size: an int (square) or HxW")] = "128",
    sample_rate: Annotated[int, typer.Option("--sample-rate", help="audio sample rate")] = 16000,
    channels: Annotated[int, typer.Option(help="audio channels")] = 1,
    window_seconds: Annotated[
        float, typer.Option("--window-seconds", help="window length (in frames)")
    ] = 1.0,
    stride_seconds: Annotated[
        float | None, typer.Option("--stride-seconds", help="hop (default: window)")
    ] = None,
    resize_mode: Annotated[str, typer.Option(help="crop (keep aspect, centre cut) or resize")] = "crop",
    mel: Annotated[bool, typer.Option(help="also store each window's log-mel")] = False,
    allow_silent: Annotated[bool, typer.Option(help="keep files without audio (silent windows)")] = False,
    holdout_seconds: Annotated[
        float, typer.Option(help="the last seconds of each file: heldout-*.tar")
    ] = 0.0,
    holdout_fraction: Annotated[float, typer.Option(help="this fraction of files: heldout-*.tar")] = 0.0,
    shard_size: Annotated[int, typer.Option(help="windows per shard")] = 256,
    processes: Annotated[int, typer.Option(help="parallel shard writers")] = max(
        1, (os.cpu_count() or 2) - 1
    ),
) -> None:
    """Decode every window of DATA once into WebDataset-style tar shards that WindowDataset reads."""
    from avtok.media_io.shards import write_shards

    frames = round(window_seconds * fps)
    stride = None if stride_seconds is None else max(1, round(stride_seconds * fps))
    try:
        mel_cfg = MelConfig(sample_rate=sample_rate, f_max=min(8000.0, sample_rate / 2)) if mel else None
        cfg = WindowConfig(
            window_frames=max(1, frames),
            fps=fps,
            size=_size(size),
            resize_mode=resize_mode,
            sample_rate=sample_rate,
            channels=channels,
            stride_frames=stride,
            allow_silent=allow_silent,
            mel=mel_cfg,
            holdout_seconds=holdout_seconds,
            holdout_fraction=holdout_fraction,
        )
        index = write_shards(data, out, cfg, shard_size=shard_size, processes=processes, progress=True)
    except MediaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {index}")


if __name__ == "__main__":
    app()
