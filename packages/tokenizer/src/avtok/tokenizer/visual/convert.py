"""Convert the released AToken checkpoints (So/C, So/D, stage 1/2, 3D Gaussian decoder) into avtok models.

``convert_atoken(CKPT, YAML, OUT)`` reads the official state dict (``.pt`` with
``torch.load(weights_only=True)`` only, or ``.safetensors``) and the official YAML config
(``configs/atoken-soc.yaml`` layout: ``model.model_cfg.arch_cfg``; ``3d_decode_gs.yaml``: ``model``),
renames every tensor to avtok's modules, and writes an avtok model folder (``model.safetensors`` +
``config.json``) that ``from_pretrained`` / ``VisualTokenizer.from_pretrained`` load. Nothing is downloaded.
Every official key must be used and every avtok tensor filled (an error names the offenders); the shapes
must match the config. The official names and layouts are facts about the released files, not code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from torch import Tensor, nn

from avtok.tokenizer.visual.config import VisualTokenizerConfig, atoken_config
from avtok.tokenizer.visual.gaussian import GaussianDecoder, GaussianDecoderConfig
from avtok.tokenizer.visual.model import VisualTokenizer
from avtok.train.pretrained import read_state_dict as read_foreign_state_dict
from avtok.train.pretrained import save_pretrained

__all__ = [
    "read_state_dict",
    "read_atoken_yaml",
    "config_from_atoken",
    "convert_state_dict",
    "convert_atoken",
    "fsq_levels_for",
]

# Levels AToken's FSQ uses per codebook size (the FSQ paper's suggestions; AToken So/D: 4096 = 4^6).
_FSQ_LEVELS = {
    2**8: (8, 6, 5),
    2**10: (8, 5, 5, 5),
    2**12: (4,) * 6,
    2**14: (8, 8, 8, 6, 5),
    2**16: (8, 8, 8, 5, 5, 5),
}
# Training-only modules of SLatGaussianDecoderTrain (LPIPS / MS-SSIM / PSNR metrics): not decoder weights.
_GS_TRAINING_PREFIXES = ("lpips_loss.", "ssim_loss.", "get_psnr.")

Transform = Callable[[Tensor], Tensor]


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """An official AToken checkpoint → ``{name: tensor}`` (:func:`avtok.train.pretrained.read_state_dict`)."""
    return read_foreign_state_dict(path, source="the AToken .pt / .safetensors file you downloaded")


def read_atoken_yaml(path: str | Path) -> dict[str, Any]:
    """The official YAML config as a dict (``yaml.safe_load``), with its ``model`` section checked."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(
            f"{path}: cannot read the AToken YAML config ({err}); pass configs/atoken-*.yaml"
        ) from err
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise ValueError(
            f"{path}: no 'model' section; pass an official AToken config (atoken-soc.yaml, "
            "atoken-sod.yaml, atoken-soc-s1.yaml or 3d_decode_gs.yaml)"
        )
    return cfg


def _require(arch: Mapping[str, Any], key: str, allowed: tuple, source: str) -> Any:
    value = arch.get(key)
    if value not in allowed:
        raise ValueError(
            f"{source}: {key}={value!r} is not supported (avtok implements {allowed}); this "
            "is another AToken architecture than the released So/C, So/D models"
        )
    return value


def fsq_levels_for(codebook_size: int, source: str = "config") -> tuple[int, ...]:
    if codebook_size not in _FSQ_LEVELS:
        raise ValueError(
            f"{source}: quantizer_codebook_size={codebook_size} is not supported; "
            f"choose one of {sorted(_FSQ_LEVELS)}"
        )
    return _FSQ_LEVELS[codebook_size]


def _visual_config(arch: Mapping[str, Any], source: str) -> VisualTokenizerConfig:
    for side in ("encoder", "decoder"):
        _require(arch, f"{side}_attn_mode", ("full",), source)
        _require(arch, f"{side}_pe_mode", ("joint",), source)
    _require(arch, "encoder_use_rms_norm", (False,), source)
    _require(arch, "encoder_qk_rms_norm", (False,), source)
    _require(arch, "encoder_use_bias", (True,), source)
    _require(arch, "decoder_use_rms_norm", (True,), source)
    _require(arch, "decoder_use_bias", (False,), source)
    _require(arch, "decoder_qk_rms_norm", (True,), source)
    if not arch.get("use_decoder", True):
        raise ValueError(f"{source}: use_decoder=False (an encoder-only model) is not supported")
    patch = tuple(int(p) for p in arch["patch_size"])
    pixels = patch[0] * patch[1] * patch[2]
    if arch["in_channels"] != arch["out_channels"] or arch["in_channels"] % pixels:
        raise ValueError(
            f"{source}: in/out_channels {arch['in_channels']}/{arch['out_channels']} do not fit "
            f"patch {patch}; expected patch volume x 3"
        )
    latent, fsq = int(arch["latent_channels"]), {}
    if arch.get("use_quantizer", False):
        _require(arch, "quantizer_type", ("fsq",), source)
        levels = fsq_levels_for(int(arch["quantizer_codebook_size"]), source)
        groups = int(arch.get("quantizer_num_codebooks", 1))
        if (
            int(arch.get("quantizer_chunk_size", 1)) != 1
            or int(arch.get("quantizer_feature_dim", latent)) != latent
            or groups * len(levels) != latent
        ):
            raise ValueError(
                f"{source}: FSQ must quantize all {latent} latent dims in "
                f"quantizer_num_codebooks x {len(levels)} (chunk size 1, no projection)"
            )
        fsq = {"use_fsq": True, "fsq_levels": levels, "fsq_groups": groups}
    dec = (
        arch["decoder_model_channels"],
        arch["decoder_num_blocks"],
        arch["decoder_num_heads"],
        arch["decoder_mlp_channels"],
    )
    return atoken_config(
        dim=int(arch["encoder_model_channels"]),
        depth=int(arch["encoder_num_blocks"]),
        heads=int(arch["encoder_num_heads"]),
        mlp_hidden=int(arch["encoder_mlp_channels"]),
        decoder=tuple(int(v) for v in dec),
        latent_dim=latent,
        patch=patch,
        in_channels=int(arch["in_channels"]) // pixels,
        **fsq,
    )


def config_from_atoken(
    cfg: Mapping[str, Any], source: str = "config"
) -> VisualTokenizerConfig | GaussianDecoderConfig:
    """The official YAML dict → avtok config (visual tokenizer, or the 3D Gaussian decoder)."""
    model = cfg["model"]
    if "model_cfg" in model:
        arch = model["model_cfg"].get("arch_cfg")
        if not isinstance(arch, Mapping):
            raise ValueError(f"{source}: model.model_cfg has no arch_cfg; pass an official AToken config")
        return _visual_config(arch, source)
    if "representation_config" in model:
        return GaussianDecoderConfig.from_atoken(model, source)
    raise ValueError(
        f"{source}: neither model.model_cfg.arch_cfg (tokenizer) nor model.representation_config "
        "(3D Gaussian decoder); pass an official AToken config"
    )


# ----------------------------------------------------------------------------- key mapping
def _table(w: Tensor) -> Tensor:
    """Official (g*g, C) embedding, row-major (row * g + col) → avtok's (C, g, g) table over (row, col)."""
    g = round(w.shape[0] ** 0.5)
    if g * g != w.shape[0]:
        raise ValueError(f"position table has {w.shape[0]} rows, not a square grid")
    return w.T.reshape(w.shape[1], g, g)


_BLOCK = [  # official suffix inside blocks.N → avtok suffix
    (r"norm1\.(weight|bias)", r"norm1.\1"),
    (r"norm2\.(weight|bias)", r"norm2.\1"),
    (r"attn\.to_qkv\.(weight|bias)", r"attn.qkv.\1"),
    (r"attn\.to_out\.(weight|bias)", r"attn.proj.\1"),
    (r"attn\.q_rms_norm\.gamma", "attn.q_norm.gain"),
    (r"attn\.k_rms_norm\.gamma", "attn.k_norm.gain"),
    (r"mlp\.mlp\.0\.(weight|bias)", r"mlp.fc1.\1"),
    (r"mlp\.mlp\.2\.(weight|bias)", r"mlp.fc2.\1"),
]


def _visual_rules() -> list[tuple[str, str, Transform | None]]:
    rules: list[tuple[str, str, Transform | None]] = [
        (r"encoder\.input_layer\.(weight|bias)", r"patch_embed.\1", None),
        (r"encoder\.pos_embedder\.position_embedding\.weight", "enc_pos.table", _table),
        (r"encoder\.post_layernorm\.(weight|bias)", r"encoder.norm.\1", None),
        (r"encoder\.head\.probe", "semantic.pool.probe", lambda w: w.reshape(1, -1)),
        (r"encoder\.head\.attention\.to_q\.(weight|bias)", r"semantic.pool.q.\1", None),
        (r"encoder\.head\.attention\.to_kv\.(weight|bias)", r"semantic.pool.kv.\1", None),
        (r"encoder\.head\.attention\.to_out\.(weight|bias)", r"semantic.pool.out.\1", None),
        (r"encoder\.head\.layernorm\.(weight|bias)", r"semantic.pool.norm.\1", None),
        (r"encoder\.head\.mlp\.mlp\.0\.(weight|bias)", r"semantic.pool.mlp.fc1.\1", None),
        (r"encoder\.head\.mlp\.mlp\.2\.(weight|bias)", r"semantic.pool.mlp.fc2.\1", None),
        (r"proj\.(weight|bias)", r"latent_head.proj.\1", None),
        (r"decoder\.input_layer\.(weight|bias)", r"latent_embed.\1", None),
        (r"decoder\.pos_embedder\.position_embedding\.weight", "dec_pos.table", _table),
        (r"decoder\.out_norm\.(weight|bias)", r"decoder.norm.\1", None),
        (r"decoder\.out_layer\.(weight|bias)", r"to_pixels.\1", None),
    ]
    for side in ("encoder", "decoder"):
        rules += [
            (rf"{side}\.blocks\.(\d+)\.{src}", rf"{side}.blocks.\1.{_shift_groups(dst)}", None)
            for src, dst in _BLOCK
        ]
    return rules


def _gaussian_rules() -> list[tuple[str, str, Transform | None]]:
    rules: list[tuple[str, str, Transform | None]] = [
        (r"input_layer\.weight", "input_layer.weight", None),
        (r"out_layer\.(weight|bias)", r"out_layer.\1", None),
        (r"offset_perturbation", "offset_perturbation", None),
    ]
    return rules + [
        (rf"blocks\.(\d+)\.{src}", rf"blocks.\1.{_shift_groups(dst)}", None) for src, dst in _BLOCK
    ]


def _shift_groups(template: str) -> str:
    """Block suffix templates use \\1 for their own group; inside blocks.(\\d+) it becomes \\2."""
    return template.replace(r"\1", r"\2")


def _rename(
    state: Mapping[str, Tensor], rules: list[tuple[str, str, Transform | None]], source: str
) -> dict[str, Tensor]:
    out, unknown = {}, []
    compiled = [(re.compile(pat + r"\Z"), dst, fn) for pat, dst, fn in rules]
    for key, value in state.items():
        for pat, dst, fn in compiled:
            m = pat.match(key)
            if m:
                tensor = value.detach().float() if value.is_floating_point() else value.detach()
                out[m.expand(dst)] = fn(tensor) if fn else tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"{source}: {len(unknown)} unknown key(s) {_names(unknown)}; this is not a checkpoint "
            "of the configured AToken architecture — pass the matching --config"
        )
    return out


def _names(keys: list[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" … (+{len(keys) - limit})" if len(keys) > limit else ""
    return "[" + ", ".join(keys[:limit]) + "]" + more


def _check_against(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(
            f"{source}: missing {len(missing)} tensor(s) for avtok {_names(missing)}; the "
            "checkpoint is incomplete or from another architecture — pass the matching --config"
        )
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(
            f"{source}: the config does not match the weights ({'; '.join(wrong[:3])}"
            f"{' …' if len(wrong) > 3 else ''}); pass the YAML that belongs to this checkpoint"
        )


def convert_state_dict(
    state: Mapping[str, Tensor],
    config: VisualTokenizerConfig | GaussianDecoderConfig,
    source: str = "checkpoint",
) -> nn.Module:
    """Official state dict + avtok config → the avtok model with those weights (float32, eval mode)."""
    if isinstance(config, GaussianDecoderConfig):
        state = {k: v for k, v in state.items() if not k.startswith(_GS_TRAINING_PREFIXES)}
        model: nn.Module = GaussianDecoder(config)
        renamed = _rename(state, _gaussian_rules(), source)
    else:
        model = VisualTokenizer(config)
        renamed = _rename(state, _visual_rules(), source)
    _check_against(model, renamed, source)
    model.load_state_dict(renamed, strict=True)
    return model.eval()


def convert_atoken(checkpoint: str | Path, config: str | Path, out: str | Path) -> Path:
    """``avtok-tokenizer convert --from atoken CKPT --config YAML --out DIR``: write an avtok model folder."""
    cfg = config_from_atoken(read_atoken_yaml(config), source=str(config))
    model = convert_state_dict(read_state_dict(checkpoint), cfg, source=str(checkpoint))
    return save_pretrained(model, out)
