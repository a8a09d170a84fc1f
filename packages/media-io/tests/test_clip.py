import pytest
import torch

from avtok.media_io import AVClip, MediaError


def _clip(**kw):
    base = dict(
        video=torch.randint(0, 256, (4, 6, 8, 3), dtype=torch.uint8),
        fps=24.0,
        audio=torch.rand(2, 100) * 2 - 1,
        sample_rate=600,
    )
    return AVClip(**{**base, **kw})


def test_properties_and_float_round_trip():
    clip = _clip()
    assert clip.num_frames == 4 and clip.duration == pytest.approx(4 / 24)
    assert clip.audio_duration == pytest.approx(100 / 600)
    vf = clip.video_float()
    assert vf.dtype == torch.float32 and vf.min() >= -1 and vf.max() <= 1
    assert torch.allclose(vf, clip.video.float() / 127.5 - 1)
    back = AVClip.from_float(video=vf, audio=clip.audio, fps=24.0, sample_rate=600)
    assert torch.equal(back.video, clip.video)  # uint8 -> float -> uint8 is exact
    assert torch.equal(back.audio, clip.audio)


def test_from_float_clamps_and_rounds():
    v = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).reshape(5, 1, 1, 1).expand(5, 1, 1, 3)
    clip = AVClip.from_float(video=v, audio=torch.full((1, 3), 1.5), fps=5, sample_rate=8)
    assert clip.video[:, 0, 0, 0].tolist() == [0, 0, 128, 255, 255]
    assert clip.audio.max() == 1.0


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(video=torch.zeros(4, 6, 8, 3)), "uint8"),
        (dict(video=torch.zeros(4, 3, 6, 8, dtype=torch.uint8)), r"\(T,H,W,3\)"),
        (dict(audio=torch.zeros(100)), r"\(C,N\)"),
        (dict(audio=torch.zeros(1, 10, dtype=torch.float64)), "float32"),
        (dict(audio=torch.full((1, 10), 2.0)), r"clamp"),
        (dict(fps=0.0), "fps"),
        (dict(sample_rate=16000.0), "sample_rate"),
        (dict(start=-1.0), "start"),
    ],
)
def test_validation_errors_name_the_fix(kw, match):
    with pytest.raises(MediaError, match=match):
        _clip(**kw)


def test_frames_tile_the_clip_and_its_audio():
    # 29.97 fps at 44.1 kHz: 1471.47 samples per frame, so spans alternate 1471 / 1472 samples
    fps, sr, n = 30000 / 1001, 44100, 10
    audio = torch.linspace(-1, 1, round(n / fps * sr)).expand(2, -1).contiguous()
    video = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 2, 3, 3).contiguous()
    clip = AVClip(video=video, audio=audio, fps=fps, sample_rate=sr, start=1.5, source="x.mp4")
    parts = [clip.frames(0, 3), clip.frames(3, 7), clip.frames(7, 10)]
    assert torch.equal(torch.cat([p.video for p in parts]), clip.video)
    assert torch.equal(torch.cat([p.audio for p in parts], dim=1), clip.audio)  # no sample lost or doubled
    assert [p.audio.shape[1] for p in parts] == [4414, 5886, 4415]  # round(3·1471.47), round(7·…) − 4414, …
    assert parts[1].start == pytest.approx(1.5 + 3 / fps) and parts[1].source == "x.mp4"
    assert int(parts[2].video[0, 0, 0, 0]) == 7
    for bad in ((3, 3), (-1, 2), (0, 11)):
        with pytest.raises(MediaError, match=r"need 0 <= t0 < t1 <= 10"):
            clip.frames(*bad)
