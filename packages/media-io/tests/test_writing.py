"""write_clip round trips through PyAV and the ffmpeg command-line tool."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from avtok.media_io import AVClip, MediaError, probe, read_clip, write_clip


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).square().mean().item()
    return 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def source_clip(concert) -> AVClip:
    return read_clip(concert, start=30.0, duration=2.0, size=(96, 128), sample_rate=22050, channels=2)


def test_round_trip_pyav(source_clip, tmp_path):
    path = write_clip(tmp_path / "rt.mp4", source_clip)
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height, info.fps, info.sample_rate, info.channels) == (128, 96, 24.0, 22050, 2)
    back = read_clip(path)
    assert back.video.shape == source_clip.video.shape
    assert _psnr(back.video, source_clip.video) > 35  # crf 18
    # durations agree to within one sample; AAC's priming delay is compensated by the mp4 edit list
    assert back.audio.shape == source_clip.audio.shape
    assert abs(back.audio_duration - back.duration) <= 1 / back.sample_rate
    a, b = back.audio.flatten(), source_clip.audio.flatten()
    assert torch.dot(a, b) / (a.norm() * b.norm()) > 0.99
    worse = read_clip(write_clip(tmp_path / "crf40.mp4", source_clip, crf=40))
    assert _psnr(worse.video, source_clip.video) < _psnr(back.video, source_clip.video) - 5


def test_round_trip_ffmpeg_cli(source_clip, tmp_path):
    imageio_ffmpeg = pytest.importorskip(
        "imageio_ffmpeg", reason="pip install imageio-ffmpeg for an ffmpeg binary"
    )
    path = write_clip(tmp_path / "rt.mp4", source_clip)
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    video = subprocess.run(
        [exe, "-v", "error", "-xerror", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = torch.from_numpy(np.frombuffer(video, np.uint8).reshape(-1, 96, 128, 3).copy())
    assert frames.shape[0] == 48 and _psnr(frames, source_clip.video) > 35
    audio = subprocess.run(
        [exe, "-v", "error", "-xerror", "-i", str(path), "-f", "f32le", "-ac", "1", "-"],
        capture_output=True,
        check=True,
    ).stdout
    mono = torch.from_numpy(np.frombuffer(audio, np.float32).copy())
    ref = source_clip.audio.mean(0)
    assert abs(mono.numel() - ref.numel()) <= 1024  # ffmpeg may keep the last partial AAC frame
    n = min(mono.numel(), ref.numel())
    assert torch.dot(mono[:n], ref[:n]) / (mono[:n].norm() * ref[:n].norm()) > 0.99


def test_write_errors(tmp_path, source_clip):
    odd = AVClip(
        video=torch.zeros(2, 1, 1, 3, dtype=torch.uint8), fps=10, audio=torch.zeros(1, 10), sample_rate=50
    )
    with pytest.raises(MediaError, match="odd.mp4: h264 .* even frame size, got 1x1; fix"):
        write_clip(tmp_path / "odd.mp4", odd)
    with pytest.raises(MediaError, match="clip.avi: .*fix: use a .mp4"):
        write_clip(tmp_path / "clip.avi", source_clip)
    with pytest.raises(MediaError, match="does not exist; fix: create it"):
        write_clip(tmp_path / "missing" / "x.mp4", source_clip)
    with pytest.raises(MediaError, match="crf"):
        write_clip(tmp_path / "x.mp4", source_clip, crf=99)


_WRITE = """
import sys
from avtok.media_io import read_clip, write_clip
write_clip(sys.argv[1], read_clip(sys.argv[2], start=30.0, duration=4.5))
"""


def test_same_clip_same_bytes_in_every_process(concert, tmp_path):
    # With x264's macroblock tree on, the first encode of a process differed in most processes while later
    # ones agreed: two fresh processes write the clip, and this one (earlier tests wrote other clips in it)
    # writes it twice more.
    for i in range(2):
        subprocess.run([sys.executable, "-c", _WRITE, str(tmp_path / f"proc{i}.mp4"), str(concert)],
                       check=True, timeout=120)
    clip = read_clip(concert, start=30.0, duration=4.5)
    paths = [*(tmp_path / f"proc{i}.mp4" for i in range(2)),
             write_clip(tmp_path / "here0.mp4", clip), write_clip(tmp_path / "here1.mp4", clip)]
    digests = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in paths}
    assert len(set(digests.values())) == 1, digests


def test_wide_strip_4000x16(tmp_path):
    frames = torch.linspace(0, 255, 4000).round().to(torch.uint8)[None, None, :, None].expand(3, 16, 4000, 3)
    clip = AVClip(video=frames.contiguous(), fps=10, audio=torch.zeros(1, 4800), sample_rate=16000)
    back = read_clip(write_clip(tmp_path / "strip.mp4", clip))
    assert back.video.shape == (3, 16, 4000, 3) and _psnr(back.video, clip.video) > 40
