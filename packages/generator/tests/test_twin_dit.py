import pytest
import torch

from avtok.generator.ovi.config import PRESETS, LatentSpec, build_config, count_parameters_formula
from avtok.generator.ovi.twin_dit import TwinDiT


def tiny(**kw) -> TwinDiT:
    torch.manual_seed(0)
    return TwinDiT(build_config("tiny", depth=kw.pop("depth", 2), audio_channels=8, **kw)).eval()


def inputs(b=2, t=4, h=3, w=3, la=10, lt=5):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(b, t, h, w, 3, generator=g),
        torch.randn(b, la, 8, generator=g),
        torch.rand(b, generator=g),
        torch.rand(b, generator=g),
        torch.randn(b, lt, 384, generator=g),
    )


def test_shapes_and_patchify_round_trip():
    m = TwinDiT(build_config("tiny", audio_channels=8, video_patch=(1, 2, 2)))
    v = torch.randn(2, 3, 4, 6, 3)
    x, grid = m.patchify(v)
    assert x.shape == (2, 3 * 2 * 3, 12) and grid == (3, 2, 3)
    assert torch.equal(m.unpatchify(x, grid), v)
    out = m(v, torch.randn(2, 7, 8), torch.rand(2), torch.rand(2), torch.randn(2, 5, 384))
    assert out.video.shape == v.shape and out.audio.shape == (2, 7, 8)
    with pytest.raises(ValueError, match="divisible"):
        m(
            torch.randn(2, 3, 5, 6, 3),
            torch.randn(2, 7, 8),
            torch.rand(2),
            torch.rand(2),
            torch.randn(2, 5, 384),
        )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_counts_match_formula(name):
    cfg = build_config(name)
    with torch.device("meta"):
        m = TwinDiT(cfg)
    counts = count_parameters_formula(cfg)
    assert sum(p.numel() for p in m.parameters()) == counts["total"]
    assert sum(p.numel() for p in m.video.parameters()) == counts["video"]
    assert sum(p.numel() for n, p in m.named_parameters() if ".ffn." in n) == counts["ffn"]


def test_ovi_11b_geometry():
    cfg = build_config("ovi-11b")
    assert (cfg.depth, cfg.dim, cfg.heads, cfg.ffn_dim, cfg.head_dim) == (30, 3072, 24, 14336, 128)
    counts = count_parameters_formula(cfg)
    assert 10.8e9 < counts["total"] < 11.4e9  # "11B"
    # Ovi fusion stage: FFNs frozen leaves "5.7B of 11B" trainable
    assert 5.6e9 < counts["total"] - counts["ffn"] < 6.0e9


def test_text_padding_is_masked():
    m = tiny()
    v, a, tv, ta, text = inputs(lt=5)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    base = m(v, a, tv, ta, text, text_mask=mask)
    text2 = text.clone()
    text2[1, 3:] = 100.0  # padding content must not matter
    other = m(v, a, tv, ta, text2, text_mask=mask)
    torch.testing.assert_close(other.video, base.video)
    torch.testing.assert_close(other.audio, base.audio)
    unmasked = m(v, a, tv, ta, text2)
    assert (unmasked.video[1] - base.video[1]).abs().max() > 1e-3


def test_fusion_is_bidirectional_and_follows_ovi_order():
    m = tiny(depth=1)
    v, a, tv, ta, text = inputs()
    base = m(v, a, tv, ta, text)
    # video output depends on audio input and vice versa (bidirectional cross-modal attention)
    assert (m(v, a + 1.0, tv, ta, text).video - base.video).abs().max() > 1e-4
    assert (m(v + 1.0, a, tv, ta, text).audio - base.audio).abs().max() > 1e-4
    # video fuses with audio from *before* audio's cross-attention: changing the audio cross-attention
    # changes the audio output but leaves the video output untouched (depth 1)
    with torch.no_grad():
        m.audio.blocks[0].cross_attn.o.weight.add_(torch.randn_like(m.audio.blocks[0].cross_attn.o.weight))
    moved = m(v, a, tv, ta, text)
    torch.testing.assert_close(moved.video, base.video)
    assert (moved.audio - base.audio).abs().max() > 1e-4
    # audio fuses with the *updated* video: changing video self-attention changes the audio output
    m2 = tiny(depth=1)
    with torch.no_grad():
        m2.video.blocks[0].self_attn.o.weight.add_(torch.randn_like(m2.video.blocks[0].self_attn.o.weight))
    assert (m2(v, a, tv, ta, text).audio - base.audio).abs().max() > 1e-4


def test_zero_fusion_values_decouple_towers():
    m = tiny()
    with torch.no_grad():
        for tower in (m.video, m.audio):
            for blk in tower.blocks:
                blk.cross_attn.v_fusion.weight.zero_()
                blk.cross_attn.v_fusion.bias.zero_()
    v, a, tv, ta, text = inputs()
    torch.testing.assert_close(m(v, a + 3.0, tv, ta, text).video, m(v, a, tv, ta, text).video)


def test_audio_rope_scale_comes_from_the_latent_spec():
    m = tiny()
    spec = LatentSpec.from_media(
        frames=121,
        fps=24,
        temporal_stride=4,
        height=704,
        width=1280,
        spatial_stride=16,
        video_channels=48,
        audio_samples=80000,
        audio_hop=512,
        audio_channels=20,
    )
    assert (spec.video_frames, spec.audio_tokens) == (31, 157)  # Ovi's numbers
    assert spec.audio_rope_scale == pytest.approx(31 / 157)
    v, a = torch.zeros(1, 31, 1, 1, 3), torch.zeros(1, 157, 8)
    assert m.audio_rope_scale(v, a, spec) == pytest.approx(31 / 157)
    assert m.audio_rope_scale(torch.zeros(1, 4, 1, 1, 3), torch.zeros(1, 10, 8), None) == pytest.approx(0.4)
    assert tiny(audio_rope_scale=1.0).audio_rope_scale(v, a, spec) == 1.0  # explicit override (ablation)
