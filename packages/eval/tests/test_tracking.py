import math

import polars as pl
import pytest
import torch

from avtok.eval.artifacts import frame_strip_png, log_report, short_mp4, spectrogram_png
from avtok.eval.tracking import MlflowTracker, NullTracker, PrefixedTracker, Tracker, compare_runs

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    # One store per module: creating an MLflow sqlite schema costs ~5 s on the shared CPU.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_mlflow_tracker_round_trip(uri, tmp_path, concert_clips):
    from mlflow.tracking import MlflowClient

    clip = concert_clips[0]
    strip = frame_strip_png(clip, clip, tmp_path / "strip.png", num_frames=4)
    spec = spectrogram_png(tmp_path / "spec.png", (clip.audio, clip.sample_rate), (clip.audio * 0, clip.sample_rate))
    movie = short_mp4(clip, tmp_path / "clip.mp4", seconds=0.5)
    from PIL import Image

    assert Image.open(strip).size == (4 * 88, 2 * 72) and Image.open(spec).size[1] == 2 * (80 + 2)
    assert movie.stat().st_size > 1000

    tracker = MlflowTracker(experiment="unit", tracking_uri=uri, run_name="first", rank=0)
    assert isinstance(tracker, Tracker)
    tracker.log_params({"model": "quant16", "size": 72})
    tracker.log_metrics({"psnr": 31.5, "identity/psnr": math.inf, "skipped": math.nan}, step=1)
    for path in (strip, spec, movie):
        tracker.log_artifact(path, artifact_path="media")
    summary = pl.DataFrame({"model": ["baseline:identity", "m"], "ssim": [1.0, 0.8], "clips": [2, 2]})
    log_report(tracker, summary, tmp_path / "tables")
    tracker.close()

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert run.data.params == {"model": "quant16", "size": "72"}
    m = run.data.metrics
    assert m["psnr"] == 31.5 and m["identity/psnr"] > 1e300 and "skipped" not in m
    assert m["baseline_identity/ssim"] == 1.0 and m["m/ssim"] == 0.8
    arts = {a.path for a in client.list_artifacts(tracker.run_id, "media")}
    assert arts == {"media/strip.png", "media/spec.png", "media/clip.mp4"}
    assert {a.path for a in client.list_artifacts(tracker.run_id, "tables")} == {"tables/summary.csv"}

    other = MlflowTracker(experiment="unit", tracking_uri=uri, run_name="second")
    other.log_metrics({"psnr": 28.0})
    other.close()
    table = compare_runs("unit", tracking_uri=uri)
    assert table["run_name"].to_list() == ["first", "second"]
    assert table["metrics.psnr"].to_list() == [31.5, 28.0] and table["params.model"].to_list() == ["quant16", None]

    resumed = MlflowTracker(experiment="unit", tracking_uri=uri, run_id=tracker.run_id)
    resumed.log_metrics({"late": 1.0})
    assert client.get_run(tracker.run_id).data.metrics["late"] == 1.0


def test_non_zero_rank_and_null_tracker_log_nothing(uri, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    t = MlflowTracker(experiment="ranked", tracking_uri=uri)
    t.log_params({"a": 1})
    t.log_metrics({"b": 2.0})
    t.close()
    assert t.run_id is None
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="'ranked' not found"):
        compare_runs("ranked", tracking_uri=uri)
    null = NullTracker()
    null.log_metrics({"x": torch.tensor(1.0).item()})
    assert isinstance(null, Tracker)


def test_missing_artifact_is_a_clear_error(uri, tmp_path):
    t = MlflowTracker(experiment="art", tracking_uri=uri)
    with pytest.raises(FileNotFoundError, match="no such file"):
        t.log_artifact(tmp_path / "nope.png")
    t.close()


def test_prefixed_tracker_names_params_metrics_and_artifacts(uri, tmp_path):
    from mlflow.tracking import MlflowClient

    tracker = MlflowTracker(experiment="unit", tracking_uri=uri, run_name="prefixed", rank=0)
    view = PrefixedTracker(tracker, "stage-0")
    assert isinstance(view, Tracker)
    view.log_params({"lr": 0.001})
    view.log_metrics({"train/loss": 0.5}, step=3)
    note = tmp_path / "note.txt"
    note.write_text("x")
    view.log_artifact(note, artifact_path="media")
    view.close()  # a view never closes the run it writes into
    tracker.log_metrics({"after": 1.0})
    tracker.close()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.data.params == {"stage-0.lr": "0.001"}
    assert run.data.metrics == {"stage-0/train/loss": 0.5, "after": 1.0}
    assert [a.path for a in client.list_artifacts(tracker.run_id, "stage-0/media")] == ["stage-0/media/note.txt"]
