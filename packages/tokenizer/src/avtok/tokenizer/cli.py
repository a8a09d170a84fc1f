"""avtok-tokenizer: train (curricula), encode, decode, reconstruct and inspect the AV / visual tokenizers.

Presets: ``tiny`` / ``paper`` (= ``tiny-av`` / ``paper-av``) are the AV tokenizer; ``tiny-visual``,
``base-visual``, ``so400m-visual`` the visual one. ``--checkpoint`` / ``--model`` take a directory written
by ``save_pretrained`` (``train`` writes one to ``<checkpoint-dir>/final``; a run directory resolves to it).
Tokens (AV) are saved as safetensors (``indices`` int32 (B, N)) with modalities, fps and audio format in
the metadata, so ``decode`` needs nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer
from safetensors.torch import load_file, save_file

from avtok.media_io import write_clip
from avtok.tokenizer.av.clip import decode_clips, encode_clips, read_window
from avtok.tokenizer.av.config import expected_av_num_params, resolve_av_config
from avtok.tokenizer.av.model import AVTokenizer, AVTokenizerOutput
from avtok.tokenizer.cli_train import reconstruct_command, train_command, user_call
from avtok.tokenizer.loading import load_model, parse_preset
from avtok.tokenizer.visual.config import expected_num_params, resolve_config
from avtok.train.pretrained import config_to_dict

app = typer.Typer(
    help="avtok tokenizers: train with curricula, encode, decode, reconstruct, info.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Model = Annotated[
    str,
    typer.Option(
        help="Preset (tiny, paper, tiny-visual, …; random weights) or a "
        "save_pretrained / train run directory."
    ),
]
Start = Annotated[float, typer.Option(help="Window start in seconds.")]


def _av_only(net) -> AVTokenizer:
    if not isinstance(net, AVTokenizer):
        raise typer.BadParameter(
            f"this command needs an AV tokenizer, got a {type(net).__name__}; "
            "use `reconstruct` for the visual tokenizer"
        )
    return net


@app.command()
def info(model: Annotated[str, typer.Argument(help="Preset name or model directory.")] = "tiny") -> None:
    """Print the config, window / token budget and parameter counts."""
    if Path(model).is_dir():
        net = user_call(load_model, model)
        cfg, family = net.config, "av" if isinstance(net, AVTokenizer) else "visual"
        if not hasattr(cfg, "patch") and family == "visual":  # e.g. AToken's 3D Gaussian decoder
            typer.echo(json.dumps(config_to_dict(cfg), indent=2))
            typer.echo(f"{type(net).__name__}: {sum(p.numel() for p in net.parameters()):,} parameters")
            return
    else:
        family, preset = user_call(parse_preset, model)
        cfg = resolve_av_config(preset) if family == "av" else resolve_config(preset)
    typer.echo(json.dumps(config_to_dict(cfg), indent=2))
    if family == "visual":
        typer.echo(f"visual tokenizer: patch {cfg.patch}, latent {cfg.latent_dim}, fsq {cfg.use_fsq}")
        for part, n in expected_num_params(cfg).items():
            typer.echo(f"{part:>13}: {n:,}")
        return
    typer.echo(
        f"window: {cfg.frames} frames {cfg.height}x{cfg.width} @ {cfg.fps:.4g} fps + 80x{cfg.mel_frames} "
        f"mel ({cfg.seconds:.3f} s); tokens: {cfg.video_tokens} video + {cfg.audio_tokens} audio, "
        f"codebook {cfg.codebook_size}"
    )
    for part, n in expected_av_num_params(cfg).items():
        typer.echo(f"{part:>13}: {n:,}")


@app.command()
def encode(source: Path, tokens: Path, model: Model = "tiny", start: Start = 0.0) -> None:
    """Encode one window of SOURCE into TOKENS (.safetensors) with the AV tokenizer."""
    net = _av_only(user_call(load_model, model))
    clip = read_window(net, source, start=start)
    with torch.no_grad():
        out = encode_clips(net, clip)
    meta = {
        "modalities": ",".join(out.modalities),
        "counts": ",".join(map(str, out.counts)),
        "fps": str(clip.fps),
        "sample_rate": str(clip.sample_rate),
        "channels": str(clip.channels),
    }
    save_file({"indices": out.indices.contiguous()}, str(tokens), metadata=meta)
    typer.echo(
        f"{tokens}: {out.indices.shape[1]} tokens ({dict(zip(out.modalities, out.counts, strict=True))})"
    )


@app.command()
def decode(tokens: Path, output: Path, model: Model = "tiny") -> None:
    """Decode TOKENS into a sounding mp4 OUTPUT (HiFi-GAN vocoder)."""
    from safetensors import safe_open

    net = _av_only(user_call(load_model, model))
    with safe_open(str(tokens), framework="pt") as f:
        meta = f.metadata() or {}
    out = AVTokenizerOutput(
        indices=load_file(str(tokens))["indices"],
        modalities=tuple(meta["modalities"].split(",")),
        counts=tuple(int(n) for n in meta["counts"].split(",")),
    )
    with torch.no_grad():
        (clip,) = decode_clips(
            net,
            out,
            fps=float(meta["fps"]),
            sample_rate=int(meta["sample_rate"]),
            channels=int(meta["channels"]),
        )
    typer.echo(str(write_clip(output, clip)))


@app.command()
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="Official checkpoint (.pt state dict or .safetensors)")],
    config: Annotated[Path, typer.Option(help="Official YAML (atoken-soc/sod/soc-s1, 3d_decode_gs .yaml)")],
    out: Annotated[Path, typer.Option(help="avtok model folder to write")],
    from_: Annotated[str, typer.Option("--from", help="Source format (only: atoken)")] = "atoken",
) -> None:
    """Convert released AToken weights into an avtok model folder (no download; see the README)."""
    from avtok.tokenizer.visual.convert import convert_atoken

    if from_ != "atoken":
        raise typer.BadParameter(f"--from {from_!r}: only 'atoken' checkpoints can be converted")
    try:
        path = convert_atoken(checkpoint, config, out)
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err
    net = load_model(str(path))
    typer.echo(f"{path}: {type(net).__name__}, {sum(p.numel() for p in net.parameters()):,} parameters")



app.command(name="train")(train_command)
app.command(name="reconstruct")(reconstruct_command)


def main() -> None:  # console-script entry point alternative
    app()


if __name__ == "__main__":
    app()

__all__ = ["app", "load_model", "parse_preset", "main"]
