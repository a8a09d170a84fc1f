"""avtok-av-tokenizer: inspect, encode, decode and reconstruct sounding clips with the AV tokenizer.

``--model`` is a preset name (random weights, for smoke tests) or a directory written by
``save_pretrained``. Tokens are saved as safetensors (``indices`` int32 (B, N)) with the modalities,
fps and audio format in the metadata, so ``decode`` needs nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer
from safetensors.torch import load_file, save_file

from avtok.media_io import read_clip, write_clip
from avtok.tokenizer.av_clip import decode_clips, encode_clips
from avtok.tokenizer.av_config import expected_av_num_params, resolve_av_config
from avtok.tokenizer.av_tokenizer import AVTokenizer, AVTokenizerOutput, build_av_tokenizer
from avtok.tokenizer.pretrained import config_to_dict, from_pretrained

app = typer.Typer(help="AVTok-style 1D audio-video tokenizer.", no_args_is_help=True)

Model = Annotated[str, typer.Option(help="Preset (tiny, paper; random weights) or a save_pretrained dir.")]
Start = Annotated[float, typer.Option(help="Window start in seconds.")]


def load_av_model(model: str, *, device: str = "cpu") -> AVTokenizer:
    """A ``save_pretrained`` directory, or a preset name (randomly initialised)."""
    if Path(model).is_dir():
        loaded = from_pretrained(model, device=device)
        if not isinstance(loaded, AVTokenizer):
            raise typer.BadParameter(f"{model}: holds a {type(loaded).__name__}, not an AV tokenizer")
        return loaded
    cfg = _preset(model)
    typer.echo(f"note: preset {model!r} has random weights", err=True)
    return build_av_tokenizer(cfg).to(device).eval()


def _preset(name: str):
    try:
        return resolve_av_config(name)
    except ValueError as err:
        raise typer.BadParameter(f"{err} (or pass a directory written by save_pretrained)") from err


def _read_window(model: AVTokenizer, source: Path, start: float):
    c = model.config
    return read_clip(source, start=start, duration=c.seconds, fps=c.fps, size=(c.height, c.width),
                     resize_mode="crop", allow_silent=True)


@app.command()
def info(model: Annotated[str, typer.Argument(help="Preset name or save_pretrained dir.")] = "tiny") -> None:
    """Print the config, window, token budget and parameter counts."""
    cfg = load_av_model(model).config if Path(model).is_dir() else _preset(model)
    typer.echo(json.dumps(config_to_dict(cfg), indent=2))
    typer.echo(f"window: {cfg.frames} frames {cfg.height}x{cfg.width} @ {cfg.fps:.4g} fps + "
               f"80x{cfg.mel_frames} "
               f"mel ({cfg.seconds:.3f} s); tokens: {cfg.video_tokens} video + {cfg.audio_tokens} audio, "
               f"codebook {cfg.codebook_size}")
    for part, n in expected_av_num_params(cfg).items():
        typer.echo(f"{part:>13}: {n:,}")


@app.command()
def encode(source: Path, tokens: Path, model: Model = "tiny", start: Start = 0.0) -> None:
    """Encode one window of SOURCE into TOKENS (.safetensors)."""
    net = load_av_model(model)
    clip = _read_window(net, source, start)
    with torch.no_grad():
        out = encode_clips(net, clip)
    meta = {"modalities": ",".join(out.modalities), "counts": ",".join(map(str, out.counts)),
            "fps": str(clip.fps), "sample_rate": str(clip.sample_rate), "channels": str(clip.channels)}
    save_file({"indices": out.indices.contiguous()}, str(tokens), metadata=meta)
    per_stream = dict(zip(out.modalities, out.counts, strict=True))
    typer.echo(f"{tokens}: {out.indices.shape[1]} tokens ({per_stream})")


@app.command()
def decode(tokens: Path, output: Path, model: Model = "tiny") -> None:
    """Decode TOKENS into a sounding mp4 OUTPUT (HiFi-GAN vocoder)."""
    from safetensors import safe_open

    net = load_av_model(model)
    with safe_open(str(tokens), framework="pt") as f:
        meta = f.metadata() or {}
    out = AVTokenizerOutput(indices=load_file(str(tokens))["indices"],
                            modalities=tuple(meta["modalities"].split(",")),
                            counts=tuple(int(n) for n in meta["counts"].split(",")))
    with torch.no_grad():
        (clip,) = decode_clips(net, out, fps=float(meta["fps"]), sample_rate=int(meta["sample_rate"]),
                               channels=int(meta["channels"]))
    typer.echo(str(write_clip(output, clip)))


@app.command()
def reconstruct(source: Path, output: Path, model: Model = "tiny", start: Start = 0.0) -> None:
    """Encode + decode one window of SOURCE; write the result to OUTPUT and print video PSNR."""
    net = load_av_model(model)
    clip = _read_window(net, source, start)
    with torch.no_grad():
        (rec,) = decode_clips(net, encode_clips(net, clip), fps=clip.fps, sample_rate=clip.sample_rate,
                              channels=clip.channels, num_samples=clip.audio.shape[1])
    mse = (rec.video_float() - clip.video_float()).square().mean()
    typer.echo(f"{write_clip(output, rec)}: video PSNR {float(10 * torch.log10(4 / mse)):.2f} dB")


if __name__ == "__main__":
    app()
