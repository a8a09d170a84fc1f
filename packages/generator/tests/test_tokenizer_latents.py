"""TokenizerLatents: the twin DiT's latents from an avtok visual tokenizer (video grid + mel-image columns).

The tokenizer here is the tiny preset with seeded random weights (a trained one is too large to ship in
the repository); what is checked does not depend on training: the latent layout, the RoPE scale derived
from the tokenizer's geometry, that decode(encode) is the tokenizer's own reconstruction, the per-channel
standardisation and saving with a pipeline (test_training.py: the flow-matching loss falls on these
latents of real clips)."""

import pytest
import torch

from avtok.generator.ovi.config import build_config
from avtok.generator.ovi.latents import TokenizerLatentConfig, TokenizerLatents
from avtok.generator.ovi.pipeline import OviPipeline
from avtok.generator.ovi.sampling import SamplerConfig
from avtok.generator.ovi.text import minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.media_io import log_mel, sample_path
from avtok.tokenizer import build_tokenizer
from avtok.tokenizer.mel_image import mel_to_image


def test_spec_and_rope_scale_come_from_the_tokenizer_geometry(tok_codec):
    s = tok_codec.spec
    assert (s.video_frames, s.video_height, s.video_width, s.video_channels) == (2, 2, 2, 48)  # 8/4, 32/16
    mel_frames = 22050 // 256  # 1 s
    assert s.audio_tokens == -(-mel_frames // 16) == 6  # one token per 16 mel frames (padded at the end)
    assert s.audio_channels == (80 // 16) * 48
    # audio token k sits at video latent frame k * scale: (latent frames / s) / (mel frames / s / 16)
    assert s.audio_rope_scale == pytest.approx(2.0 / (22050 / 256 / 16))


def test_latents_are_the_tokenizers_own_in_grid_order(tok_codec, tok_clips):
    clip = tok_clips[0]
    v, a = tok_codec.encode_raw(clip)
    tok = tok_codec.tokenizer
    with torch.no_grad():
        out = tok.encode(clip.video_float(), sample=False)
        for (t, x, y, _), z in zip(out.coords.tolist(), out.latents, strict=True):
            assert torch.allclose(v[t, y, x], z, atol=1e-6)
        mel = log_mel(clip.audio.mean(0))[:, : 22050 // 256]
        img = tok.encode(mel_to_image(mel), sample=False)
        for (_, x, y, _), z in zip(img.coords.tolist(), img.latents, strict=True):
            assert torch.allclose(a[x, y * 48 : (y + 1) * 48], z, atol=1e-6)  # token = time column x


def test_decode_of_encode_is_the_tokenizers_reconstruction(tok_codec, tok_clips):
    clip = tok_clips[1]
    out = tok_codec.decode(*tok_codec.encode(clip))
    with torch.no_grad():
        rec = tok_codec.tokenizer(clip.video_float())[1][0].clamp(-1, 1)
    assert out.video.shape == clip.video.shape and out.video.dtype == torch.uint8
    assert (out.video.float() / 127.5 - 1 - rec).abs().max() <= 1 / 127.5 + 1e-6  # uint8 rounding only
    assert out.sample_rate == 22050 and out.audio.shape == (1, 22050)  # exactly the video's 1 s


def test_fit_standardises_each_channel_and_decode_undoes_it(tok_clips):
    torch.manual_seed(0)
    codec = TokenizerLatents(build_tokenizer("tiny"), TokenizerLatentConfig(seconds=1.0, fps=8.0, size=32))
    raw = codec.encode_raw(tok_clips[2])
    codec.fit(tok_clips)
    lat = [codec.encode(c) for c in tok_clips]
    v = torch.stack([x[0] for x in lat]).flatten(0, -2)
    a = torch.stack([x[1] for x in lat]).flatten(0, -2)
    for z in (v, a):
        assert z.mean(0).abs().max() < 1e-4 and (z.std(0) - 1).abs().max() < 1e-3
    # the decoder sees the raw latents again: decode(standardised) == decode of the unfitted codec
    torch.manual_seed(0)
    plain = TokenizerLatents(build_tokenizer("tiny"), TokenizerLatentConfig(seconds=1.0, fps=8.0, size=32))
    diff = codec.decode(*lat[2]).video.int() - plain.decode(*raw).video.int()
    assert diff.abs().max() <= 1  # equal up to float rounding at a uint8 step
    with pytest.raises(ValueError, match="at least 2"):
        codec.fit(tok_clips[:1])


def test_encode_rejects_clips_in_the_wrong_format(tok_codec):
    wrong = tok_codec.read(str(sample_path("concert")), start=3.0)
    wrong.video = wrong.video[:, :16]
    with pytest.raises(ValueError, match="TokenizerLatents.read"):
        tok_codec.encode(wrong)


def test_pipeline_with_tokenizer_latents_saves_and_loads(tok_codec, tok_clips, tmp_path):
    codec = TokenizerLatents(tok_codec.tokenizer, TokenizerLatentConfig(seconds=1.0, fps=8.0, size=32)).fit(
        tok_clips
    )
    s = codec.spec
    torch.manual_seed(0)
    model = TwinDiT(build_config("tiny", depth=1, video_channels=s.video_channels,
                                 audio_channels=s.audio_channels))
    pipe = OviPipeline(model, codec, minilm_encoder())
    loaded = OviPipeline.load(pipe.save(tmp_path / "pipe"), encoder=pipe.encoder)
    assert isinstance(loaded.codec, TokenizerLatents) and loaded.codec.cfg == codec.cfg
    cfg = SamplerConfig(steps=2)
    x = pipe.generate(["a band"], seeds=[1], cfg=cfg, task="a2v", clips=tok_clips[:1])[0]
    y = loaded.generate(["a band"], seeds=[1], cfg=cfg, task="a2v", clips=tok_clips[:1])[0]
    assert torch.equal(x.video, y.video) and torch.equal(x.audio, y.audio)
    assert x.video.shape == (8, 32, 32, 3)
