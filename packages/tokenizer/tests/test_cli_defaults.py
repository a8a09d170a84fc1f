"""`avtok-tokenizer train` with nothing but an output folder, on CPU: the defaults (tiny-av, the bundled
concert, 2000 steps, the cheap loss set, lr 3e-3) must give a tokenizer that beats the trivial mean-frame
baseline on the held-out tail, and the report must say what it scored."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from avtok.tokenizer.cli import app


@pytest.mark.slow
def test_a_default_cpu_run_beats_the_mean_frame_on_the_held_out_tail(tmp_path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--checkpoint-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "steps 0 -> 800" in result.output and "frame FID on every 4th frame" in result.output
    rows = {r["model"]: r for r in json.loads((out / "heldout_clip.json").read_text())}
    ours, mean = rows["avtok-av"], rows["baseline:mean_frame+silence"]
    # 2000-step runs, seeds 0-2 (docs/evidence/tokenizer.md, "Default CPU run"): +0.87 to +1.09 dB over the
    # mean frame, SSIM +0.07 to +0.09; at the old lr 1e-3, seed 0 stayed 0.10 dB below it
    assert ours["psnr"] > mean["psnr"] + 0.4 and ours["ssim"] > mean["ssim"]
    assert ours["frame_fid"] < mean["frame_fid"]
