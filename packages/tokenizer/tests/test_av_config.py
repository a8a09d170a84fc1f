"""AV tokenizer config: presets, token budget, derived sizes and closed-form parameter counts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from avtok.tokenizer.av.config import (
    AVTOK_PAPER_PARAMS,
    AVTokenizerConfig,
    expected_av_num_params,
    resolve_av_config,
)
from avtok.tokenizer.av.model import AVTokenizer, build_av_tokenizer
from avtok.train.pretrained import config_from_dict, config_to_dict
from avtok.train.transformer import TransformerConfig


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_cpu_presets_param_count_matches_closed_form_per_part(preset: str) -> None:
    model = build_av_tokenizer(preset)
    want = expected_av_num_params(model.config)
    assert _numel(model) == want["total"]
    assert _numel(model.streams["video"]) == want["video_stream"]
    assert _numel(model.streams["audio"]) == want["audio_stream"]
    assert _numel(model.encoder) == want["encoder"]
    assert _numel(model.decoder) == want["decoder"]
    assert _numel(model.align_head) == want["align"] and _numel(model.prior) == want["prior"]
    assert want["tokenizer"] == want["total"] - want["align"] - want["prior"]
    assert want["total"] == {"tiny": 387_692, "small": 331_820}[preset]


def test_paper_preset_is_avtok_sized_on_meta() -> None:
    cfg = resolve_av_config("paper")
    with torch.device("meta"):
        model = AVTokenizer(cfg)
    want = expected_av_num_params(cfg)
    assert model.num_params() == want["total"] == want["tokenizer"] == 209_773_893
    assert abs(want["tokenizer"] / AVTOK_PAPER_PARAMS - 1) < 0.01  # AVTok: 208.4M
    # AVTok's budget: 16×128×128 video + 80×384 mel → 1152 tokens in one codebook
    assert (cfg.frames, cfg.height, cfg.width, cfg.n_mels, cfg.mel_frames) == (16, 128, 128, 80, 384)
    assert cfg.num_tokens == 1152 == cfg.video_tokens + cfg.audio_tokens
    assert cfg.codebook_size == 8 * 8 * 8 * 6 * 5


def test_derived_sizes_share_one_time_span() -> None:
    cfg = resolve_av_config("paper")
    assert cfg.seconds == pytest.approx(384 * 256 / 22050)
    assert cfg.fps * cfg.seconds == pytest.approx(16)
    assert cfg.num_samples == 384 * 256
    assert cfg.video_grid == (4, 16, 16) and cfg.num_video_patches == 1024 and cfg.video_patch_dim == 768
    assert cfg.audio_grid == (1, 10, 48) and cfg.num_audio_patches == 480 and cfg.audio_patch_dim == 64


def test_presets_are_fresh_copies_and_unknown_names_fail() -> None:
    a = resolve_av_config("tiny")
    a.video_tokens = 7
    assert resolve_av_config("tiny").video_tokens == 32
    with pytest.raises(ValueError, match="unknown AV tokenizer preset 'huge'.*paper"):
        resolve_av_config("huge")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"video_tokens": 0}, "video_tokens"),
        ({"fsq_levels": (8, 1)}, "fsq_levels"),
        ({"audio_patch": (8, 8, 8)}, "audio_patch"),
        ({"mel_frames": -4}, "mel_frames"),
        ({"token_init": "grid"}, "token_init"),
    ],
)
def test_bad_config_names_the_field(change: dict, message: str) -> None:
    base = dataclasses.asdict(resolve_av_config("tiny"))
    enc = TransformerConfig(**base.pop("encoder"))
    dec = TransformerConfig(**base.pop("decoder"))
    base.pop("prior")
    with pytest.raises(ValueError, match=message):
        AVTokenizerConfig(encoder=enc, decoder=dec, **{**base, **change})


def test_parts_cover_every_parameter_once() -> None:
    model = build_av_tokenizer("tiny")
    parts = model.parts()
    ids = [id(p) for ps in parts.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    want = expected_av_num_params(model.config)
    assert sum(p.numel() for p in parts["video"]) == want["video_stream"]
    assert sum(p.numel() for p in parts["bottleneck"]) == want["bottleneck"]


def test_config_without_token_init_loads_as_learned() -> None:
    """Checkpoints written before ``token_init`` existed were trained with learned queries."""
    saved = config_to_dict(resolve_av_config("tiny"))
    assert config_from_dict(AVTokenizerConfig, saved).token_init == "pooled"
    saved.pop("token_init")
    assert config_from_dict(AVTokenizerConfig, saved).token_init == "learned"
