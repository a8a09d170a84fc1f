import pytest
import torch

from avtok.eval.generation import GenerationConfig, evaluate_generation
from avtok.media_io import AVClip


def _flip(clip: AVClip) -> AVClip:
    g = torch.Generator().manual_seed(0)
    audio = (clip.audio + 0.2 * torch.randn(clip.audio.shape, generator=g)).clamp(-1, 1)
    return AVClip(video=clip.video.flip(1).contiguous(), audio=audio, fps=clip.fps, sample_rate=clip.sample_rate)


def test_identical_sets_score_zero_and_degraded_sets_do_not(concert_clips, aisfx_weights):
    cfg = GenerationConfig(frame_stride=24)  # 1 frame per clip keeps Inception cheap on CPU
    same = evaluate_generation(concert_clips, concert_clips, cfg=cfg)
    assert same.columns == ["set", "clips", "frame_fid", "fad", "av_onset_align", "av_loudness_motion"]
    gen = same.row(0, named=True)
    assert gen["set"] == "generated" and gen["clips"] == 2
    assert gen["frame_fid"] == pytest.approx(0.0, abs=1e-3) and gen["fad"] == pytest.approx(0.0, abs=1e-3)
    for col in ("av_onset_align", "av_loudness_motion"):
        assert gen[col] == pytest.approx(same.row(1, named=True)[col])
    worse = evaluate_generation([_flip(c) for c in concert_clips], concert_clips, cfg=cfg).row(0, named=True)
    assert worse["frame_fid"] > 10.0 and worse["fad"] > 1.0


def test_errors(concert_clips, tmp_path, aisfx_weights):
    cfg = GenerationConfig(frame_fid=False, fad=False)
    with pytest.raises(ValueError, match="generated: no clips"):
        evaluate_generation([], concert_clips, cfg=cfg)
    with pytest.raises(ValueError, match="no media files"):
        evaluate_generation(tmp_path, concert_clips, cfg=cfg)
    with pytest.raises(FileNotFoundError, match="FVD needs I3D weights.*not FVD"):
        evaluate_generation(concert_clips, concert_clips, cfg=GenerationConfig(i3d_path=str(tmp_path / "i3d.pt")))
    one = GenerationConfig(frame_fid=False, fad=True, av_sync=False)
    short = AVClip(video=concert_clips[0].video, audio=concert_clips[0].audio, fps=24.0, sample_rate=22050)
    with pytest.raises(ValueError, match="generated audio: 1 samples"):
        evaluate_generation([short], concert_clips, cfg=one)
