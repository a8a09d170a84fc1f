"""The main job (tools/demo.py) end to end on a short window of a real clip: every number it reports
must be the number it claims to be."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from avtok.eval.tracking import NullTracker

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("avtok_demo", ROOT / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["avtok_demo"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_demo_report_on_real_clip(demo, tmp_path: Path) -> None:
    cfg = demo.DemoConfig(clips=["concert"], windows=1, seconds=1.5, size=64, out=str(tmp_path), track=False)
    report = demo.run(cfg, NullTracker(), Console(quiet=True))
    page = report.read_text()
    assert "<video" in page and "_frames.png" in page and "_mel.png" in page
    summary = pl.read_csv(tmp_path / "summary.csv").to_dicts()
    rows = {r["model"]: r for r in summary}
    codec, mean = rows["h264+aac"], rows["baseline:mean_frame+silence"]
    # h264 at crf 18 on a 64x64 window: visibly lossy but far above the trivial baselines.
    assert 28.0 < codec["psnr"] < 60.0 and codec["psnr"] > mean["psnr"] + 8
    assert codec["si_sdr"] > 10.0 and codec["mel_l1"] < mean["mel_l1"] / 5
    # patchify/unpatchify is exact, so its audio equals the hifigan row's (same mel, same vocoder).
    assert rows["patchify"]["ssim"] == pytest.approx(1.0)
    assert rows["patchify"]["mel_l1"] == pytest.approx(rows["hifigan"]["mel_l1"], rel=1e-6)
    # a vocoded waveform keeps the spectrum far better than silence does
    assert rows["hifigan"]["mel_l1"] < mean["mel_l1"] / 3
    assert (tmp_path / "report.html").is_file() and len(list(tmp_path.glob("*.mp4"))) == 5
