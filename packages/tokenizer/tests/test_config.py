from __future__ import annotations

import pytest
import torch

from avtok.tokenizer import (
    PRESETS,
    TransformerConfig,
    VisualTokenizerConfig,
    build_tokenizer,
    expected_num_params,
    resolve_config,
)


@pytest.mark.parametrize("name", ["tiny", "tiny-atoken", "base", "so400m", "so400m-fsq"])
def test_param_count_matches_closed_form(name: str) -> None:
    cfg = resolve_config(name)
    with torch.device("meta"):  # base / so400m cost no memory on meta
        model = build_tokenizer(cfg)
    counts = expected_num_params(cfg)
    print(f"{name}: {model.num_params():,} parameters {counts}")
    assert model.num_params() == counts["total"]
    n = lambda *mods: sum(p.numel() for m in mods if m is not None for p in m.parameters())  # noqa: E731
    assert n(model.patch_embed, model.enc_pos, model.encoder) == counts["encoder"]
    assert n(model.latent_head) == counts["posterior"]
    assert n(model.semantic) == counts["semantic"]
    assert n(model.latent_embed, model.dec_pos, model.decoder, model.to_pixels) == counts["decoder"]


@pytest.mark.parametrize("changes", [{"use_fsq": True}, {"pos_embed_grid": None}, {"latent_dim": 32}])
def test_param_count_variants(changes: dict) -> None:
    cfg = resolve_config("tiny")
    for k, v in changes.items():
        setattr(cfg, k, v)
    assert build_tokenizer(cfg).num_params() == expected_num_params(cfg)["total"]


def test_paper_sizes() -> None:
    base, so = PRESETS["base"], PRESETS["so400m"]
    assert (base.encoder.depth, base.encoder.dim, base.encoder.heads) == (12, 768, 12)
    assert (so.encoder.depth, so.encoder.dim, so.encoder.heads) == (27, 1152, 16)
    dec = so.decoder  # AToken So/C: same sizes, RMSNorm, no biases, per-head L2 q/k norm
    assert (dec.depth, dec.dim, dec.heads, dec.mlp_hidden) == (27, 1152, 16, 4304)
    assert base.patch == (4, 16, 16)
    assert (dec.norm, dec.bias, dec.qkv_bias, dec.qk_norm) == ("rmsnorm", False, False, True)
    assert (so.encoder.norm, so.encoder.bias, so.encoder.qk_norm) == ("layernorm", True, False)
    assert so.latent_dim == 48 and not so.use_fsq and PRESETS["so400m-fsq"].use_fsq
    # SigLIP-So400m's vision tower is ~400M parameters: the encoder (without heads) must be close.
    assert 400e6 < expected_num_params(so)["encoder"] < 430e6
    assert so.encoder.axes_dims == (18, 18, 18, 18)  # 72-d heads split evenly over (t, x, y, z)


def test_resolve_returns_fresh_copies() -> None:
    a = resolve_config("tiny")
    a.latent_dim = 32
    assert resolve_config("tiny").latent_dim == 48


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: TransformerConfig(dim=64, depth=1, heads=5, mlp_hidden=8), "divisible"),
        (lambda: TransformerConfig(dim=64, depth=1, heads=4, mlp_hidden=8, rope_axes_dims=(4, 4, 4, 3)),
         "even"),
        (lambda: VisualTokenizerConfig(encoder=PRESETS["tiny"].encoder, decoder=PRESETS["tiny"].decoder,
                                       latent_dim=32, use_fsq=True), "FSQ needs latent_dim"),
        (lambda: resolve_config("huge"), "unknown tokenizer preset"),
    ],
)
def test_bad_configs_name_the_fix(build, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()
