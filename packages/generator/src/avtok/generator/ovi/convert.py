"""Convert the released Ovi fusion checkpoint into an avtok model folder (``config.json`` + safetensors).

Ovi ships its 11B ``FusionModel`` as one state dict (``ckpts/Ovi/model.safetensors`` for 720x720 5 s,
``model_960x960.safetensors``, ``model_960x960_10s.safetensors``; training dumps as ``.pt``) with keys
``video_model.*`` / ``audio_model.*`` (two Wan towers). The tower sizes come from the weights; the head
count, ``text_len`` and the audio RoPE factor are not stored in them and come from the official
``video.json`` / ``audio.json`` when they sit next to the checkpoint (else Wan's head dim 128, 512 and
0.19676). The result is :class:`avtok.generator.ovi.twin_dit.TwinDiT` with the official behaviour: unmasked
512-row text, convolutional audio embedding, fixed audio RoPE factor. Every official key must be used and
every avtok key filled; anything else is an error naming the keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from avtok.generator.__about__ import __version__
from avtok.generator.ovi.checkpoints import read_state_dict
from avtok.generator.ovi.config import OVI_ROPE_SCALE, TwinDiTConfig
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.train.atomic import atomic_write_json
from avtok.train.pretrained import CONFIG_NAME, WEIGHTS_NAME, config_to_dict

__all__ = ["OVI_CHECKPOINTS", "avtok_to_ovi", "convert_ovi", "find_checkpoint", "ovi_config", "ovi_to_avtok"]

OVI_CHECKPOINTS = (
    "model.safetensors",
    "model_960x960.safetensors",
    "model_960x960_10s.safetensors",
    "model_fp8_e4m3fn.safetensors",
)
TOWERS = {"video_model.": "video.", "audio_model.": "audio."}
OVI_CHANNELS = {"video": 48, "audio": 20}  # Wan2.2 VAE / MMAudio VAE latent channels
# official (per tower, after the prefix) -> avtok; the rest of the names are identical
RENAMES = (
    (re.compile(r"^blocks\.(\d+)\.ffn\.0\."), r"blocks.\1.ffn.fc1."),
    (re.compile(r"^blocks\.(\d+)\.ffn\.2\."), r"blocks.\1.ffn.fc2."),
    (re.compile(r"^blocks\.(\d+)\.modulation\.modulation$"), r"blocks.\1.modulation"),
    (re.compile(r"^head\.modulation$"), "head_modulation"),
    (re.compile(r"^head\.head\."), "head."),
    (re.compile(r"^patch_embedding\."), "patch_embed."),
    (re.compile(r"^text_embedding\."), "text_embed."),
    (re.compile(r"^time_embedding\."), "time_embed."),
    (re.compile(r"^time_projection\."), "time_proj."),
)
INVERSE = (  # avtok -> official, for exporting fine-tuned weights back to the Ovi layout
    (re.compile(r"^blocks\.(\d+)\.ffn\.fc1\."), r"blocks.\1.ffn.0."),
    (re.compile(r"^blocks\.(\d+)\.ffn\.fc2\."), r"blocks.\1.ffn.2."),
    (re.compile(r"^blocks\.(\d+)\.modulation$"), r"blocks.\1.modulation.modulation"),
    (re.compile(r"^head_modulation$"), "head.modulation"),
    (re.compile(r"^head\.(weight|bias)$"), r"head.head.\1"),
    (re.compile(r"^patch_embed\."), "patch_embedding."),
    (re.compile(r"^text_embed\."), "text_embedding."),
    (re.compile(r"^time_embed\."), "time_embedding."),
    (re.compile(r"^time_proj\."), "time_projection."),
)


def find_checkpoint(path: str | Path) -> Path:
    """The fusion checkpoint: ``path`` itself, or a known file name in ``path`` or ``path/Ovi``."""
    src = Path(path)
    if src.is_file():
        return src
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such file or directory; pass the Ovi checkpoint or its folder")
    for folder in (src, src / "Ovi"):
        for name in OVI_CHECKPOINTS:
            if (folder / name).is_file():
                return folder / name
        found = sorted(folder.glob("*.pt")) if folder.is_dir() else []
        if len(found) == 1:
            return found[0]
    raise FileNotFoundError(
        f"{src}: no Ovi checkpoint ({', '.join(OVI_CHECKPOINTS)} or one *.pt) here or in {src / 'Ovi'}; "
        "download it from the Hugging Face repo chetwinlow1/Ovi (see the generator README)"
    )


def _official_json(folder: Path, name: str) -> dict:
    for cand in (folder / f"{name}.json", folder / "configs" / f"{name}.json"):
        if cand.is_file():
            return json.loads(cand.read_text())
    return {}


def ovi_config(state: dict[str, Tensor], *, video_json: dict | None = None,
               audio_json: dict | None = None, heads: int | None = None) -> TwinDiTConfig:
    """The TwinDiTConfig of an official fusion state dict (sizes from the weights, the rest from JSON)."""
    towers = {p for p in TOWERS if any(k.startswith(p) for k in state)}
    if towers != set(TOWERS):
        some = ", ".join(sorted(state)[:3])
        raise ValueError(
            f"not an Ovi fusion checkpoint: it has no {sorted(set(TOWERS) - towers)} keys "
            f"(first keys: {some}); "
            "give the Ovi model.safetensors (FusionModel state dict)"
        )
    video_json, audio_json = video_json or {}, audio_json or {}
    need = ("video_model.patch_embedding.weight", "audio_model.patch_embedding.0.weight",
            "video_model.text_embedding.0.weight", "video_model.time_embedding.0.weight",
            "video_model.blocks.0.ffn.0.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"Ovi checkpoint lacks {missing}; the file is incomplete or of another model")
    pv = state["video_model.patch_embedding.weight"]  # (D, Cv, pt, ph, pw)
    channels = {"video": (pv.shape[1], int(video_json.get("in_dim", OVI_CHANNELS["video"]))),
                "audio": (state["audio_model.patch_embedding.0.weight"].shape[1],
                          int(audio_json.get("in_dim", OVI_CHANNELS["audio"])))}
    for name, (got, want) in channels.items():
        if got != want:
            raise ValueError(f"Ovi checkpoint: the {name} tower takes {got} latent channels, Ovi's {name} "
                             f"VAE "
                             f"gives {want}; this is not an Ovi fusion checkpoint (or pass its {name}.json)")
    dim = pv.shape[0]
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("video_model.blocks."))
    heads = heads or video_json.get("num_heads") or dim // 128  # Wan towers use head dim 128
    return TwinDiTConfig(
        name="ovi",
        dim=dim,
        depth=depth,
        heads=int(heads),
        ffn_dim=state["video_model.blocks.0.ffn.0.weight"].shape[0],
        text_dim=state["video_model.text_embedding.0.weight"].shape[1],
        freq_dim=state["video_model.time_embedding.0.weight"].shape[1],
        video_channels=pv.shape[1],
        audio_channels=state["audio_model.patch_embedding.0.weight"].shape[1],
        video_patch=tuple(int(x) for x in pv.shape[2:]),
        audio_rope_scale=float(audio_json.get("temporal_rope_scaling_factor", OVI_ROPE_SCALE)),
        qk_norm=bool(video_json.get("qk_norm", True)),
        eps=float(video_json.get("eps", 1e-6)),
        text_len=int(video_json.get("text_len", 512)),
        audio_embed="conv",
    )


def _rename(key: str, towers: dict[str, str] = TOWERS, rules: tuple = RENAMES) -> str:
    for prefix, ours in towers.items():
        if key.startswith(prefix):
            rest = key[len(prefix):]
            for pattern, repl in rules:
                rest = pattern.sub(repl, rest)
            return ours + rest
    return key


def avtok_to_ovi(state: dict[str, Tensor], cfg: TwinDiTConfig) -> dict[str, Tensor]:
    """TwinDiT state dict (``audio_embed="conv"``) -> the official fusion layout (inverse of ovi_to_avtok)."""
    if cfg.audio_embed != "conv":
        raise ValueError("avtok_to_ovi: the model has a linear audio embedding; only audio_embed='conv' "
                         "models have the Ovi layout")
    back = {v: k for k, v in TOWERS.items()}
    out = {}
    for key, value in state.items():
        if key == "video.patch_embed.weight":  # Linear over (p q r c) -> Conv3d (D, C, p, q, r)
            value = value.reshape(value.shape[0], *cfg.video_patch, cfg.video_channels).permute(0, 4, 1, 2, 3)
        out[_rename(key, back, INVERSE)] = value.contiguous()
    return out


def ovi_to_avtok(state: dict[str, Tensor], cfg: TwinDiTConfig, dtype: torch.dtype | None = None
                 ) -> dict[str, Tensor]:
    """Official fusion state dict -> TwinDiT state dict (strict: every key used, shapes checked)."""
    with torch.device("meta"):
        expected = {k: v.shape for k, v in TwinDiT(cfg).state_dict().items()}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        ours = _rename(key)
        if key == "video_model.patch_embedding.weight":  # Conv3d (D, C, p, q, r) -> Linear over (p q r c)
            value = value.permute(0, 2, 3, 4, 1).reshape(value.shape[0], -1)
        out[ours] = value if dtype is None or not value.is_floating_point() else value.to(dtype)
    unknown = sorted(k for k, ours in ((k, _rename(k)) for k in state) if ours not in expected)
    missing = sorted(set(expected) - set(out))
    if unknown or missing:
        raise ValueError(f"Ovi checkpoint does not match the fusion model: unknown keys {unknown[:8]}"
                         f"{' …' if len(unknown) > 8 else ''}, missing keys {missing[:8]}"
                         f"{' …' if len(missing) > 8 else ''}")
    bad = [f"{k} {tuple(v.shape)} != {tuple(expected[k])}" for k, v in out.items()
           if tuple(v.shape) != tuple(expected[k])]
    if bad:
        raise ValueError(f"Ovi checkpoint shapes differ from the config: {bad[:4]}; pass the right --heads "
                         "or the official video.json / audio.json next to the checkpoint")
    return out


def convert_ovi(src: str | Path, out: str | Path, *, dtype: torch.dtype | None = torch.float32,
                heads: int | None = None) -> Path:
    """Write ``out/config.json`` + ``out/model.safetensors`` (loadable with ``from_pretrained``)."""
    ckpt = find_checkpoint(src)
    state = read_state_dict(ckpt)
    folder = ckpt.parent
    cfg = ovi_config(state, video_json=_official_json(folder, "video"),
                     audio_json=_official_json(folder, "audio"), heads=heads)
    weights = ovi_to_avtok(state, cfg, dtype)
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    meta = {"kind": TwinDiT.kind, "package": "avtok-generator", "version": __version__,
            "config": config_to_dict(cfg),
            "source": {"format": "ovi", "checkpoint": ckpt.name}}
    atomic_write_json(dest / CONFIG_NAME, meta, indent=2)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(dest / WEIGHTS_NAME),
              metadata={"format": "pt"})
    return dest
