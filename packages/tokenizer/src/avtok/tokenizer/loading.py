"""Load a tokenizer by name: a preset (random weights) or a ``save_pretrained`` / training-run directory.

Library code shared by the CLIs, the main job and the generator; errors are ``ValueError``s whose message
names the input and the fix (the CLIs print them as one line).
"""

from __future__ import annotations

import sys
from pathlib import Path

from avtok.tokenizer.av.config import resolve_av_config
from avtok.tokenizer.av.model import AVTokenizer, build_av_tokenizer
from avtok.tokenizer.visual.config import resolve_config
from avtok.tokenizer.visual.model import VisualTokenizer, build_tokenizer
from avtok.train.pretrained import from_pretrained

__all__ = ["load_model", "model_dir", "parse_preset"]


def parse_preset(name: str) -> tuple[str, str]:
    """``tiny-av`` / ``tiny`` → ("av", "tiny"); ``tiny-visual`` → ("visual", "tiny")."""
    if name.endswith("-visual"):
        family, preset = "visual", name[: -len("-visual")]
    else:
        family, preset = "av", name.removesuffix("-av")
    try:
        (resolve_av_config if family == "av" else resolve_config)(preset)
    except ValueError as err:
        raise ValueError(
            f"{err} (presets: tiny-av, small-av, paper-av, tiny-visual, tiny-atoken-visual, base-visual, "
            "so400m-visual; or pass a directory written by save_pretrained)"
        ) from err
    return family, preset


def model_dir(path: Path) -> Path:
    return path / "final" if (path / "final" / "config.json").exists() else path


def load_model(model: str, *, device: str = "cpu") -> AVTokenizer | VisualTokenizer:
    """A ``save_pretrained`` / run directory, or a preset name (randomly initialised)."""
    if Path(model).is_dir():
        d = model_dir(Path(model))
        if not (d / "config.json").exists():
            raise ValueError(
                f"{model}: no config.json (nor final/config.json); pass the directory "
                "`avtok-tokenizer train --checkpoint-dir` wrote or a save_pretrained dir"
            )
        return from_pretrained(d, device=device).eval()
    family, preset = parse_preset(model)
    print(f"note: preset {model!r} has random weights", file=sys.stderr)
    net = build_av_tokenizer(preset) if family == "av" else build_tokenizer(preset)
    return net.to(device).eval()
