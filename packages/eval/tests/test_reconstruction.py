import math

import pytest
import torch

from avtok.eval.baselines import IdentityBaseline, MeanFrameSilenceBaseline, RepeatFirstFrameBaseline
from avtok.eval.clip_metrics import ClipMetricsConfig
from avtok.eval.protocols import Reconstructor, Tokenizer, TokenizerReconstructor
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip


class Quantized:
    """Tokenizer stand-in with a known error: pixels to 16 levels (index = token), audio to 256 levels."""

    levels = 16

    def encode(self, clip: AVClip):
        class Tokens:
            pass

        t = Tokens()
        t.indices = (clip.video.long() * self.levels // 256).flatten()  # (T*H*W*3,) codes in [0, 16)
        t.shape, t.fps, t.sr = clip.video.shape, clip.fps, clip.sample_rate
        t.audio = torch.round(clip.audio * 128) / 128
        return t

    def decode(self, t) -> AVClip:
        centre = (t.indices * 256 // self.levels + 256 // (2 * self.levels)).clamp(0, 255)
        return AVClip(video=centre.to(torch.uint8).view(t.shape), audio=t.audio, fps=t.fps, sample_rate=t.sr)


def test_tokenizer_is_scored_between_the_baselines(concert_clips):
    model = TokenizerReconstructor(Quantized(), name="quant16")
    assert isinstance(Quantized(), Tokenizer) and isinstance(model, Reconstructor)
    report = evaluate_reconstruction(model, concert_clips, cfg=ReconstructionConfig(codebook_size=16))
    per_clip, summary = report.per_clip, report.summary
    assert per_clip.height == 2 * 4 and set(summary["model"]) == {
        "quant16", IdentityBaseline.name, MeanFrameSilenceBaseline.name, RepeatFirstFrameBaseline.name}
    row = {r["model"]: r for r in summary.iter_rows(named=True)}
    q, ident = row["quant16"], row[IdentityBaseline.name]
    mean_frame, first = row[MeanFrameSilenceBaseline.name], row[RepeatFirstFrameBaseline.name]
    assert math.isinf(ident["psnr"]) and ident["ssim"] == pytest.approx(1.0) and ident["mrstft"] == 0.0
    # The quantiser's PSNR equals the closed form over its actual pixel errors.
    clip = concert_clips[0]
    err = (Quantized().decode(Quantized().encode(clip)).video.float() - clip.video.float()) / 127.5
    expected = 10 * math.log10(4.0 / float(err.square().mean()))
    got = per_clip.filter(per_clip["model"] == "quant16")["psnr"][0]
    assert got == pytest.approx(expected, abs=1e-5)  # float32 frames
    assert 25 < q["psnr"] < 45 and q["psnr"] > mean_frame["psnr"] and q["psnr"] > first["psnr"]
    assert q["ssim"] > max(mean_frame["ssim"], first["ssim"])
    assert q["si_sdr"] > 20 and math.isinf(first["si_sdr"]) and first["si_sdr"] < 0
    assert q["mel_l1"] < mean_frame["mel_l1"]
    assert 0 < q["codebook_usage"] <= 1 and 1 < q["codebook_perplexity"] <= 16 and q["tokens_per_s"] > 0
    assert q["clips_per_s"] > 0


def test_baselines_are_what_they_claim(concert_clips):
    clip = concert_clips[0]
    first = RepeatFirstFrameBaseline().reconstruct(clip)
    assert torch.equal(first.video[5], clip.video[0]) and first.audio.abs().max() == 0
    mean = MeanFrameSilenceBaseline().reconstruct(clip)
    assert torch.allclose(mean.video[0].float(), clip.video.float().mean(0), atol=0.5)
    assert torch.equal(IdentityBaseline().reconstruct(clip).video, clip.video)


def test_bad_models_and_datasets(concert_clips):
    class Cropper:
        name = "cropper"

        def reconstruct(self, clip):
            return AVClip(video=clip.video[:, :32], audio=clip.audio, fps=clip.fps, sample_rate=clip.sample_rate)

    with pytest.raises(ValueError, match=r"video \(24, 32, 88, 3\) != reference \(24, 72, 88, 3\)"):
        evaluate_reconstruction(Cropper(), concert_clips)
    with pytest.raises(TypeError, match="lacks encode"):
        evaluate_reconstruction(object(), concert_clips)
    with pytest.raises(ValueError, match="no clips"):
        evaluate_reconstruction(IdentityBaseline(), [])
    with pytest.raises(TypeError, match="expected an AVClip"):
        evaluate_reconstruction(IdentityBaseline(), [torch.zeros(3)])


def test_set_metrics_frame_fid_and_fad(concert_clips, aisfx_weights):
    cfg = ReconstructionConfig(frame_fid=True, fad=True, frame_stride=24, metrics=ClipMetricsConfig(mel=False))
    report = evaluate_reconstruction(IdentityBaseline(), concert_clips, cfg=cfg)
    row = {r["model"]: r for r in report.summary.iter_rows(named=True)}
    ident, first = row[IdentityBaseline.name], row[RepeatFirstFrameBaseline.name]
    assert ident["frame_fid"] == pytest.approx(0.0, abs=1e-3) and ident["fad"] == pytest.approx(0.0, abs=1e-3)
    assert first["frame_fid"] == pytest.approx(0.0, abs=1e-3)  # frame 0 is the only frame sampled at stride 24
    assert row[MeanFrameSilenceBaseline.name]["frame_fid"] > 1.0 and first["fad"] > 1.0
    assert "mel_l1" not in report.per_clip.columns


def test_frame_fid_runs_inception_once_per_distinct_frame(concert_clips, monkeypatch):
    """The identity baseline reuses the reference's features and a held frame (mean / first frame) is run
    once: the statistics equal those of running every frame, with ~2/5 of the Inception work."""
    from avtok.eval import reconstruction as rec
    from avtok.eval.inception import InceptionFeatures

    seen = []
    call = InceptionFeatures.__call__
    monkeypatch.setattr(InceptionFeatures, "__call__", lambda self, x: seen.append(len(x)) or call(self, x))
    cfg = ReconstructionConfig(frame_fid=True, frame_stride=6, metrics=ClipMetricsConfig(mel=False))
    model = TokenizerReconstructor(Quantized(), name="quant16")
    fast = evaluate_reconstruction(model, concert_clips, cfg=cfg).summary
    fast_frames, seen[:] = sum(seen), []
    monkeypatch.setattr(rec._SetMetrics, "_frame_features",
                        lambda self, video: self.inception(video[:: self.cfg.frame_stride]))
    every = evaluate_reconstruction(model, concert_clips, cfg=cfg).summary
    per_clip = [len(c.video[::6]) for c in concert_clips]
    assert sum(seen) == 5 * sum(per_clip) and fast_frames == 2 * sum(per_clip) + 2 * len(concert_clips)
    for a, b in zip(fast.iter_rows(named=True), every.iter_rows(named=True), strict=True):
        assert a["model"] == b["model"] and a["frame_fid"] == pytest.approx(b["frame_fid"], rel=1e-4, abs=1e-3)
