"""AV tokenizer: round trips on a real sounding clip, unified indices, modality drop, fusion, hooks, I/O."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from avtok.media_io import log_mel, read_clip, sample_path
from avtok.tokenizer import from_pretrained, save_pretrained
from avtok.tokenizer.av.clip import clip_inputs
from avtok.tokenizer.av.config import resolve_av_config
from avtok.tokenizer.av.model import (
    AVTokenizer,
    AVTokenizerOutput,
    _patch_coords,
    _resample,
    build_av_tokenizer,
)
from avtok.train.transformer import TransformerConfig


@pytest.fixture(scope="module")
def model() -> AVTokenizer:
    torch.manual_seed(0)
    return build_av_tokenizer("tiny").eval()


@pytest.fixture(scope="module")
def inputs(model: AVTokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real windows of the concert clip: video (2, 8, 32, 32, 3) and normalised mel (2, 80, 48)."""
    c = model.config
    clips = [read_clip(sample_path("concert"), start=s, duration=c.seconds, fps=c.fps, size=(32, 32),
                       resize_mode="crop", sample_rate=22050, channels=1) for s in (12.0, 31.0)]
    model.fit_mel_stats(torch.stack([log_mel(clip.audio[0]) for clip in clips]))
    return clip_inputs(model, clips)


def test_round_trip_shapes_and_unified_indices(model: AVTokenizer, inputs) -> None:
    video, mel = inputs
    with torch.no_grad():
        tokens, rec = model(video, mel)
    c = model.config
    assert tokens.modalities == ("video", "audio") and tokens.counts == (32, 16)
    assert tokens.indices.shape == (2, 48) and tokens.indices.dtype == torch.int32
    assert int(tokens.indices.min()) >= 0 and int(tokens.indices.max()) < c.codebook_size == 1000
    assert tokens.codes.shape == tokens.latents.shape == (2, 48, 4)
    assert tokens.features.shape == (2, 48, c.encoder.dim)
    assert rec.video.shape == video.shape and rec.mel.shape == mel.shape
    # indices are the FSQ indices of the codes (one unified codebook for both streams)
    assert torch.equal(model.fsq.codes_to_indices(tokens.codes)[..., 0], tokens.indices)
    assert len(torch.unique(tokens.indices)) > 8  # distinct tokens, not one collapsed code


def test_decodable_from_indices_alone(model: AVTokenizer, inputs) -> None:
    video, mel = inputs
    with torch.no_grad():
        tokens, rec = model(video, mel)
        only = AVTokenizerOutput(indices=tokens.indices.clone(), modalities=tokens.modalities,
                                 counts=tokens.counts)
        again = model.decode(only)
        by_helper = model.decode_indices(tokens.indices)
    torch.testing.assert_close(again.video, rec.video, rtol=0, atol=1e-6)
    torch.testing.assert_close(again.mel, rec.mel, rtol=0, atol=1e-6)
    assert torch.equal(by_helper.video, again.video)


def test_modality_drop_uses_the_same_weights(model: AVTokenizer, inputs) -> None:
    video, mel = inputs
    with torch.no_grad():
        v_tokens, v_rec = model(video, None)
        a_tokens, a_rec = model(None, mel)
        joint = model.encode(video, mel)
    assert v_tokens.modalities == ("video",) and v_tokens.indices.shape == (2, 32)
    assert a_tokens.modalities == ("audio",) and a_tokens.indices.shape == (2, 16)
    assert v_rec.mel is None and v_rec.video.shape == video.shape
    assert a_rec.video is None and a_rec.mel.shape == mel.shape
    # an absent stream has no tokens: decoding video-only indices needs no audio anywhere
    with torch.no_grad():
        again = model.decode_indices(v_tokens.indices, ("video",))
    torch.testing.assert_close(again.video, v_rec.video, rtol=0, atol=1e-6)
    # implicit fusion: in the joint sequence the video tokens see the audio (and vice versa)
    assert not torch.allclose(joint.split(joint.latents)["video"], v_tokens.latents, atol=1e-4)
    assert not torch.allclose(joint.split(joint.latents)["audio"], a_tokens.latents, atol=1e-4)


def test_joint_tokens_change_with_the_other_stream(model: AVTokenizer, inputs) -> None:
    video, mel = inputs
    with torch.no_grad():
        a = model.encode(video, mel)
        b = model.encode(video, mel.flip(0))  # same video, the other clip's audio
    va, vb = a.split(a.latents)["video"], b.split(b.latents)["video"]
    assert not torch.allclose(va, vb, atol=1e-4)
    # batch items are independent: sample 0 with audio 1 differs only through its own audio
    with torch.no_grad():
        single = model.encode(video[:1], mel[1:])
    torch.testing.assert_close(single.latents[0], b.latents[0], rtol=1e-4, atol=1e-5)


def test_gradients_reach_both_streams_through_fsq(inputs) -> None:
    torch.manual_seed(0)
    model = build_av_tokenizer("tiny")
    video, mel = inputs
    _, rec = model(video, mel)
    ((rec.video - video).abs().mean() + (rec.mel - mel).abs().mean()).backward()
    for name in ("video", "audio"):
        stream = model.streams[name]
        assert float(stream.patch_embed.weight.grad.abs().sum()) > 0  # straight-through FSQ
        assert float(stream.latent_queries.grad.abs().sum()) > 0
    assert float(model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum()) > 0


def test_audio_rope_time_shares_the_video_clock() -> None:
    cfg = resolve_av_config("paper")
    coords = _patch_coords(cfg)
    video, audio = coords["video"], coords["audio"]
    assert video.shape == (1024, 4) and audio.shape == (480, 4)
    assert torch.equal(video[:, 3], torch.zeros(1024))  # video: z = 0
    assert torch.equal(audio[:, 1:3], torch.zeros(480, 2))  # audio: x = y = 0, mel band on z
    assert sorted(set(audio[:, 3].tolist())) == list(range(10))
    # both spans are the same 4.46 s: the mean time coordinate agrees, and the last audio column's centre
    # sits at (window - half a column) in latent-frame units
    assert float(audio[:, 0].mean()) == pytest.approx(float(video[:, 0].mean()))
    col_s, t_s = 8 * 256 / 22050, 4 / cfg.fps
    assert float(audio[:, 0].max()) == pytest.approx((cfg.seconds - col_s / 2) / t_s - 0.5)


def test_ar_prior_is_causal(model: AVTokenizer, inputs) -> None:
    video, mel = inputs
    with torch.no_grad():
        tokens = model.encode(video, mel)
        logits = model.prior_logits(tokens)
        codes = tokens.codes.clone()
        codes[:, 20] = -codes[:, 20] + 0.1  # perturb token 20 only
        moved = model.prior_logits(AVTokenizerOutput(indices=None, codes=codes, modalities=tokens.modalities,
                                                     counts=tokens.counts))
    assert logits.shape == (2, 48, model.config.codebook_size)
    torch.testing.assert_close(moved[:, :21], logits[:, :21], rtol=0, atol=1e-6)  # positions <= 20 unchanged
    assert not torch.allclose(moved[:, 21:], logits[:, 21:], atol=1e-5)
    # audio-only sequences keep their joint positions (RoPE on the t axis)
    assert model.token_positions(("audio",)).tolist() == list(range(32, 48))


def test_alignment_loss_is_one_minus_cosine(model: AVTokenizer, inputs) -> None:
    video, mel = inputs
    with torch.no_grad():
        tokens = model.encode(video, mel)
        proj = tokens.split(model.align_projection(tokens))
        assert model.align_loss(tokens, video=proj["video"]).item() == pytest.approx(0.0, abs=1e-6)
        assert model.align_loss(tokens, audio=-proj["audio"].mean(1)).item() == pytest.approx(2.0, abs=1e-5)
        target = torch.randn(2, 32)
        cos = torch.nn.functional.cosine_similarity(proj["video"].mean(1), target, dim=-1)
        want = float((1 - cos).mean())
        assert model.align_loss(tokens, video=target).item() == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match=r"alignment video: features of shape \(2, 5, 32\)"):
        model.align_loss(tokens, video=torch.randn(2, 5, 32))
    v_only = model.encode(video, None)
    with pytest.raises(ValueError, match="tokens hold only"):
        model.align_loss(v_only, audio=torch.randn(2, 32))


def test_bad_inputs_name_the_input_and_fix(model: AVTokenizer, inputs) -> None:
    video, mel = inputs
    with pytest.raises(ValueError, match=r"video: expected float \(B, 8, 32, 32, 3\).*read_clip"):
        model.encode(video[:, :4], mel)
    with pytest.raises(ValueError, match=r"mel: expected float \(B, 80, 48\).*normalize_mel"):
        model.encode(video, mel[..., :40])
    with pytest.raises(ValueError, match="both video and mel are None"):
        model.encode()
    with pytest.raises(ValueError, match="expects counts"):
        model.decode(AVTokenizerOutput(indices=torch.zeros(1, 10, dtype=torch.int32), modalities=("video",),
                                       counts=(10,)))
    with pytest.raises(ValueError, match="indices must lie in"):
        model.decode_indices(torch.full((1, 48), 1000, dtype=torch.int32))


def test_resample_averages_equal_slices_and_repeats_when_upsampling() -> None:
    x = torch.arange(6.0).reshape(1, 6, 1)  # (B, L, D)
    assert _resample(x, 3).flatten().tolist() == [0.5, 2.5, 4.5]
    assert _resample(x[:, :2], 4).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    assert torch.equal(_resample(x, 6), x)


def test_pooled_start_makes_tokens_input_dependent_at_init(inputs) -> None:
    """Two real windows through an untrained tokenizer: the learned (TiTok) start gives them nearly the
    same continuous tokens, the pooled start (tiny preset) clearly different ones."""
    video, mel = inputs
    gap = {}
    for init in ("learned", "pooled"):
        torch.manual_seed(0)
        net = AVTokenizer(dataclasses.replace(resolve_av_config("tiny"), token_init=init)).eval()
        with torch.no_grad():
            latents = net.encode(video, mel).latents  # (2, N, C)
        gap[init] = float((latents[0] - latents[1]).abs().mean())
    assert [resolve_av_config(p).token_init for p in ("tiny", "paper")] == ["pooled", "learned"]
    assert gap["pooled"] > 3 * gap["learned"], gap  # measured 0.376 vs 0.079


def test_save_load_identity(model: AVTokenizer, inputs, tmp_path) -> None:
    video, mel = inputs
    save_pretrained(model, tmp_path / "av")
    same = from_pretrained(tmp_path / "av")
    assert isinstance(same, AVTokenizer) and same.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), same.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    assert torch.equal(same.mel_low, model.mel_low)
    assert float(model.mel_low.min()) > -11.6  # the fitted stats (not the default floor) were saved
    with torch.no_grad():
        a, b = model.encode(video, mel), same.encode(video, mel)
    assert torch.equal(a.indices, b.indices)


def test_paper_token_layout_at_full_size_narrow_width() -> None:
    """The paper window (16×128×128 + 80×384 → 768 + 384 tokens) at d 64, 1 + 1 blocks."""
    block = TransformerConfig(dim=64, depth=1, heads=4, mlp_hidden=128)
    cfg = dataclasses.replace(resolve_av_config("paper"), encoder=block, decoder=block)
    torch.manual_seed(0)
    model = build_av_tokenizer(cfg).eval()
    video = torch.rand(1, 16, 128, 128, 3) * 2 - 1
    mel = torch.rand(1, 80, 384) * 2 - 1
    with torch.no_grad():
        tokens, rec = model(video, mel)
    assert tokens.indices.shape == (1, 1152) and tokens.counts == (768, 384)
    assert int(tokens.indices.max()) < 15360
    assert rec.video.shape == video.shape and rec.mel.shape == mel.shape
    assert model.video_coords.shape == (1024, 4) and model.audio_coords.shape == (480, 4)
