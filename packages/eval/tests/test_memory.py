"""Evaluation memory is bounded: long / high-resolution files are scored in segments and float32 blocks."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avtok.eval.folders import iter_segments
from avtok.media_io import read_clip, sample_path

# Peak RSS of `avtok-eval recon --no-baselines --media 0` on the 24-frame 1080p clip below (2-core CPU
# box, torch 2.14.1): the old whole-clip float64 driver needed 6.4 GB for 12 such frames (~85x the raw
# frames, so ~13 GB for 24); this code ~1.2-1.3 GB, ~0.8 GB of which is importing torch + PyAV + polars.
# Measured as the child's own VmHWM (`peak_rss_mb`): ru_maxrss would carry the pytest worker's peak.
PEAK_RSS_MB = 2000


def _write_1080p(path: Path, frames: int) -> None:
    """The concert clip's frames upscaled to 1920x1080 (real content), x264 ultrafast to keep the test quick."""
    clip = read_clip(sample_path("concert"), start=10.0, duration=frames / 24, size=(1080, 1920))
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=24, options={"preset": "ultrafast", "crf": "30"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for frame in clip.video.numpy():
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode())


_RUN = """
import json, sys
from avtok.eval import peak_rss_mb
from avtok.eval.cli import app
app(sys.argv[1:], standalone_mode=False)
print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
"""


@pytest.mark.slow
def test_recon_peak_rss_is_bounded_on_a_long_1080p_clip(tmp_path):
    refs, recs = tmp_path / "refs", tmp_path / "recs"
    refs.mkdir(), recs.mkdir()
    _write_1080p(refs / "long.mp4", frames=24)
    shutil.copy(refs / "long.mp4", recs / "long.mp4")
    cmd = [sys.executable, "-c", _RUN, "recon", str(refs), str(recs), "--no-baselines", "--media", "0",
           "--segment-mb", "32", "--out", str(tmp_path / "out")]  # 5 frames of 1080p per segment
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    peak = json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    per_clip = (tmp_path / "out" / "per_clip.csv").read_text().splitlines()
    assert len(per_clip) == 1 + 5  # header + 5 segments (5+5+5+5+4 frames)
    assert peak < PEAK_RSS_MB, f"peak RSS {peak:.0f} MB"


def test_segments_tile_the_whole_read():
    """Segments read back-to-back give exactly the frames of one whole read, and its audio at their starts."""
    path = sample_path("concert")
    kw = dict(duration=2.0, size=(36, 44), sample_rate=16000, allow_silent=True)
    whole = read_clip(path, **kw)
    segs = list(iter_segments(path, segment_mb=36 * 44 * 3 * 10 / 2**20, **kw))  # 10 frames each
    assert [s.num_frames for s in segs] == [10, 10, 10, 10, 8]  # 48 frames at the file's 24 fps
    assert torch.equal(torch.cat([s.video for s in segs]), whole.video)
    for s in segs:  # each segment's audio is the whole read's at its start (rounded to a sample)
        a = round(s.start * s.sample_rate)
        n = min(s.audio.shape[1], whole.audio.shape[1] - a)
        assert n >= s.audio.shape[1] - 1 and torch.allclose(s.audio[:, :n], whole.audio[:, a : a + n], atol=1e-4)
