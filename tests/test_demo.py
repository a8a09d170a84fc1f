"""The main job (``avtok demo``, avtok.generator.job) end to end in a quick configuration on the real concert clip: it trains
both models, scores them with avtok-eval, logs to MLflow, writes the report, and a second run reuses the
checkpoints instead of training again. Every number it reports must be the number it claims to be."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
import torch
from rich.console import Console

from avtok.eval.tracking import MlflowTracker, NullTracker

ROOT = Path(__file__).resolve().parents[1]
# 20 steps per model, 2 held-out windows, 2 clips per generated set: ~1 min per run on a loaded 2-core box
QUICK = dict(
    minutes=1.0, max_steps=20, samples=2, eval_windows=2, sample_steps=4, frame_stride=8, player_windows=2
)
STEPS = QUICK["max_steps"]


@pytest.fixture(scope="module")
def demo():
    from avtok.generator.job import cli

    return cli


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rows(df: pl.DataFrame) -> dict[str, dict]:
    return {r["model"]: r for r in df.to_dicts()}


def _check_reconstruction(rows: dict[str, dict]) -> None:
    tok, mean = rows["avtok-av"], rows["baseline:mean_frame+silence"]
    assert rows["baseline:identity"]["ssim"] == pytest.approx(1.0)
    for key in ("psnr", "ssim", "frame_fid", "mrstft", "mel_l1", "codebook_usage"):
        assert math.isfinite(tok[key]), key
    assert 5.0 < tok["psnr"] < 60.0 and -1.0 <= tok["ssim"] <= 1.0 and tok["frame_fid"] > 0
    assert 0 < tok["codebook_usage"] <= 1.0
    # even 20 steps put the decoded spectrum far closer to the truth than the silence baseline
    assert tok["mel_l1"] < mean["mel_l1"] / 3 and tok["mrstft"] < mean["mrstft"]
    # media ceilings: h264 is lossy but above the trivial floor; HiFi-GAN leaves the video untouched. The floor's
    # PSNR depends on how still the scored windows are (the streamed held-out windows of the quick run are nearly
    # static: mean frame 31.0 dB, h264 31.1), so the margin is asserted on SSIM, which a blurred average loses
    codec, vocoder = rows["ceiling:h264+aac"], rows["ceiling:hifigan(true mel)"]
    assert 25.0 < codec["psnr"] < 60.0 and codec["psnr"] > mean["psnr"] and codec["si_sdr"] > 10.0
    assert codec["ssim"] > mean["ssim"] + 0.05
    assert vocoder["ssim"] == pytest.approx(1.0) and vocoder["mel_l1"] < mean["mel_l1"] / 5


def _check_generation(rows: dict[str, dict]) -> None:
    for name in ("t2av", "a2v (held-out audio)", "floor:untrained t2av", "ceiling:latent round trip"):
        r = rows[name]
        assert r["clips"] == 2 and math.isfinite(r["frame_fid"]) and r["frame_fid"] > 0, name
        assert math.isfinite(r["fad"]) and -1.0 <= r["av_onset_align"] <= 1.0, name
    # a2v keeps the given (held-out) audio latents, so its audio is the latent round trip's, bit for bit
    assert rows["a2v (held-out audio)"]["fad"] == pytest.approx(
        rows["ceiling:latent round trip"]["fad"], rel=1e-6
    )
    assert rows["real held-out clips"]["frame_fid"] == 0.0


@pytest.mark.slow
def test_main_job_trains_scores_logs_reports_and_reuses(demo, tmp_path: Path, one_thread) -> None:
    cache = str(tmp_path / "cache")
    tracker = MlflowTracker(
        experiment="avtok-demo-test", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", run_name="quick"
    )
    first = demo.run(
        demo.DemoConfig(out=str(tmp_path / "out1"), cache=cache, **QUICK), tracker, Console(quiet=True)
    )
    tracker.close()

    page = first.report.read_text()
    assert page.count("<video") >= 8 and page.count("<audio") >= 4 and page.count("<table") >= 3
    for name in (
        "avtok-av",
        "baseline:mean_frame+silence",
        "ceiling:h264+aac",
        "t2av",
        "a2v (held-out audio)",
    ):
        assert name in page
    for src in ("tok_stretch_frames.png", "tok_w00_mel.png", "gen_00_mel.png", "gen_00_t2av.mp4"):
        assert src in page and (first.report.parent / src).is_file()
    _check_reconstruction(_rows(first.recon))
    _check_generation(_rows(first.generation))
    tok, gen = first.results["tokenizer"], first.results["generator"]
    assert not tok["reused"] and tok["new_steps"] == tok["steps"] >= STEPS  # VFAL's 3 stages round up
    assert [s["name"] for s in tok["stages"]] == ["video", "audio", "decoders"]
    assert not gen["reused"] and gen["new_steps"] == gen["steps"] == STEPS

    # MLflow holds the config, both training curves, every table cell and the report
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    run = client.get_run(tracker.run_id)
    metrics, params = run.data.metrics, run.data.params
    assert run.info.status == "FINISHED" and params["preset"] == "tiny" and params["max_steps"] == str(STEPS)
    assert "tokenizer/0-video/train/loss" in metrics and "generator/train/loss" in metrics
    assert metrics["recon/avtok-av/psnr"] == pytest.approx(_rows(first.recon)["avtok-av"]["psnr"])
    # the whole held-out tail as one clip (window by window), next to that clip's own baselines
    whole = _rows(pl.read_csv(tmp_path / "out1" / "reconstruction_clip.csv"))
    assert whole["avtok-av"]["clips"] == whole["baseline:mean_frame+silence"]["clips"] == 1
    assert 5.0 < whole["avtok-av"]["psnr"] < 60.0 and "whole held-out tail" in page
    assert whole["avtok-av"]["mel_l1"] < whole["baseline:mean_frame+silence"]["mel_l1"] / 3
    assert metrics["recon_clip/avtok-av/psnr"] == pytest.approx(whole["avtok-av"]["psnr"])
    assert metrics["gen/t2av/frame_fid"] == pytest.approx(_rows(first.generation)["t2av"]["frame_fid"])
    assert metrics["tokenizer/new_steps"] == tok["steps"] and metrics["generator/steps"] == STEPS
    assert "report/report.html" in {a.path for a in client.list_artifacts(tracker.run_id, "report")}
    assert run.data.tags["avtok.version.avtok-generator"] and run.data.tags["avtok.torch"] == torch.__version__

    # both trained models are loadable folders recording their own package's version
    import json

    from typer.testing import CliRunner

    import avtok.generator
    import avtok.tokenizer
    from avtok.tokenizer.cli import app as tokenizer_cli
    from avtok.train.pretrained import from_pretrained

    tok_dir = Path(first.results["cache"]) / "tokenizer"
    info = CliRunner().invoke(tokenizer_cli, ["info", str(tok_dir)])
    assert info.exit_code == 0 and "window:" in info.output and "tokens:" in info.output, info.output
    for folder, package, version in ((tok_dir / "final", "avtok-tokenizer", avtok.tokenizer.__version__),
                                     (tok_dir.parent / "generator" / "pipeline", "avtok-generator",
                                      avtok.generator.__version__)):
        meta = json.loads((folder / "config.json").read_text())
        assert (meta["package"], meta["version"]) == (package, version)
        assert sum(p.numel() for p in from_pretrained(folder).parameters()) > 0

    # a second run trains nothing: the same checkpoints give the same reconstructions
    small = {**QUICK, "player_windows": 0}
    second = demo.run(
        demo.DemoConfig(out=str(tmp_path / "out2"), cache=cache, reference_rows=False, **small),
        NullTracker(),
        Console(quiet=True),
    )
    tok2, gen2 = second.results["tokenizer"], second.results["generator"]
    assert tok2["reused"] and tok2["new_steps"] == 0 and tok2["steps"] == tok["steps"]
    assert gen2["reused"] and gen2["new_steps"] == 0 and gen2["steps"] == STEPS
    per1 = pl.read_csv(tmp_path / "out1" / "reconstruction_per_window.csv").filter(
        pl.col("model") == "avtok-av"
    )
    per2 = pl.read_csv(tmp_path / "out2" / "reconstruction_per_window.csv").filter(
        pl.col("model") == "avtok-av"
    )
    same = per2.join(per1, on="clip", suffix="_1")
    assert same.height == 2  # the same held-out windows
    assert same["psnr"].to_list() == pytest.approx(same["psnr_1"].to_list(), rel=1e-9)
    assert same["mel_l1"].to_list() == pytest.approx(same["mel_l1_1"].to_list(), rel=1e-6)
