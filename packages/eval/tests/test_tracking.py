import math

import polars as pl
import pytest
import torch

import avtok.eval
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

    assert Image.open(strip).size == (4 * clip.width, 2 * clip.height) and Image.open(spec).size[1] > 200
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
    tags = run.data.tags
    assert tags["avtok.version.avtok-eval"] == avtok.eval.__version__
    assert tags["avtok.torch"] == torch.__version__
    assert tags["avtok.device"] in ("cpu", "cuda") and tags["avtok.cuda"] == (torch.version.cuda or "none")
    assert "avtok.command" in tags
    m = run.data.metrics
    assert m["psnr"] == 31.5 and math.isnan(m["identity/psnr"]) and "skipped" not in m
    assert run.data.tags["avtok.inf.identity/psnr"] == "+inf"
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
    resumed.close()
    run = client.get_run(tracker.run_id)
    assert run.data.metrics["late"] == 1.0 and run.data.tags["avtok.attempt.1"] == "FINISHED"


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


def test_spectrograms_share_one_db_scale(concert_clips):
    """A copy 20 dB quieter sits 20 dB lower on the shared scale (not stretched to its own min-max)."""
    from avtok.eval.artifacts import log_mel_db, shared_db_limits

    clip = concert_clips[0]
    loud, centres, rate = log_mel_db(clip.audio, clip.sample_rate)
    quiet, _, _ = log_mel_db(clip.audio * 0.1, clip.sample_rate)
    audible = quiet > -60  # well above the floor of the log clamp (and the STFT epsilon)
    assert torch.allclose((loud - quiet)[audible], torch.full_like(loud[audible], 20.0), atol=0.01)
    assert shared_db_limits([loud, quiet], db_range=80) == (float(loud.max()) - 80, float(loud.max()))
    assert centres[0] < 100 and 7000 < centres[-1] <= 8000 and (centres.diff() >= 0).all()
    assert rate == pytest.approx(22050 / 256)


def test_metrics_are_batched(uri, monkeypatch):
    """2,500 values reach the store in 3 log_batch requests (1000 per request), none one by one."""
    from mlflow.tracking import MlflowClient

    calls = {"log_batch": 0, "log_metric": 0}
    real_batch = MlflowClient.log_batch

    def counting_batch(self, run_id, metrics=(), params=(), tags=(), **kw):
        calls["log_batch"] += bool(metrics)
        return real_batch(self, run_id, metrics=metrics, params=params, tags=tags, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", counting_batch)
    monkeypatch.setattr(MlflowClient, "log_metric", lambda *a, **k: calls.__setitem__("log_metric", 1))
    t = MlflowTracker(experiment="batched", tracking_uri=uri, flush_seconds=3600)
    for step in range(500):
        t.log_metrics({f"m{i}": float(step * 5 + i) for i in range(5)}, step=step)
    assert calls["log_batch"] == 2  # flushed at 1000 waiting values; 500 still buffered
    t.close()
    assert calls == {"log_batch": 3, "log_metric": 0}
    history = MlflowClient(tracking_uri=uri).get_metric_history(t.run_id, "m3")
    assert [(h.step, h.value) for h in history[:2]] == [(0, 3.0), (1, 8.0)] and len(history) == 500


def test_git_tags_of_a_checkout(tmp_path):
    """Commit + dirty flag come from the checkout that tracks the source file, and only from one."""
    import subprocess

    from avtok.eval.run_tags import git_state

    repo = tmp_path / "repo"
    repo.mkdir()
    src = repo / "mod.py"
    src.write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q"], check=True)
    assert git_state(src) == {}  # untracked: an installed copy inside some other repo records nothing
    subprocess.run([*git, "add", "mod.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    want = {"mlflow.source.git.commit": head, "avtok.git_commit": head, "avtok.git_dirty": "false"}
    assert git_state(src) == want
    src.write_text("x = 2\n")
    assert git_state(src)["avtok.git_dirty"] == "true"


@pytest.mark.parametrize("raised, status, code", [
    (None, "FINISHED", None),
    (ValueError("bad --data"), "FAILED", None),
    (KeyboardInterrupt(), "KILLED", None),
    ("sigterm", "KILLED", 143),
])
def test_tracked_run_records_the_outcome(uri, raised, status, code):
    import os
    import signal

    from mlflow.tracking import MlflowClient

    from avtok.eval.tracking import tracked_run

    t = MlflowTracker(experiment="outcome", tracking_uri=uri)
    with pytest.raises((ValueError, KeyboardInterrupt, SystemExit)) if raised else _nothing() as info:
        with tracked_run(t):
            t.log_metrics({"before": 1.0})
            if raised == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            elif raised is not None:
                raise raised
    run = MlflowClient(tracking_uri=uri).get_run(t.run_id)
    assert run.info.status == status and run.data.metrics["before"] == 1.0
    if code is not None:
        assert info.value.code == code
    if status == "FAILED":
        assert run.data.tags["avtok.error"] == "ValueError: bad --data"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or status != "KILLED"


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_resumed_folder_continues_one_run_and_marks_the_killed_attempt(uri, tmp_path):
    """#28 item 13: a run killed without closing stays RUNNING; resuming its folder marks that attempt
    KILLED and continues the same run id, so the loss curve is one curve; a changed param is kept as a tag."""
    from mlflow.tracking import MlflowClient

    from avtok.eval.tracking import tracker_for_folder

    folder = tmp_path / "ckpt"
    first = tracker_for_folder(folder, experiment="resume", tracking_uri=uri, run_name="r")
    first.log_params({"max_steps": 10, "lr": 0.1})
    first.log_metrics({"loss": 1.0}, step=1)
    first.flush()  # then SIGKILL: nobody calls close()
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(first.run_id).info.status == "RUNNING"

    second = tracker_for_folder(folder, experiment="resume", tracking_uri=uri, resume=True)
    assert second.run_id == first.run_id
    run = client.get_run(first.run_id)
    assert run.info.status == "RUNNING" and run.data.tags["avtok.attempt.1"] == "KILLED"
    second.log_params({"max_steps": 20, "lr": 0.1})
    second.log_metrics({"loss": 0.5}, step=2)
    second.close()
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["avtok.attempts"] == "2"
    assert run.data.params["max_steps"] == "10" and run.data.tags["avtok.param.max_steps.attempt2"] == "20"
    curve = client.get_metric_history(first.run_id, "loss")
    assert [(m.step, m.value) for m in curve] == [(1, 1.0), (2, 0.5)]

    # without resume: a new run; a remembered run left RUNNING is marked KILLED
    dangling = tracker_for_folder(folder, experiment="resume", tracking_uri=uri, resume=True)
    fresh = tracker_for_folder(folder, experiment="resume", tracking_uri=uri)
    assert fresh.run_id != dangling.run_id == first.run_id
    assert client.get_run(first.run_id).info.status == "KILLED"
    fresh.close()
    # only_interrupted (the main job): a finished run is not continued
    again = tracker_for_folder(folder, experiment="resume", tracking_uri=uri, resume=True,
                               only_interrupted=True)
    assert again.run_id != fresh.run_id
    again.close()


_START_RUN = """
import sys
from avtok.eval.tracking import MlflowTracker
t = MlflowTracker(experiment="together", tracking_uri=sys.argv[1], run_name=sys.argv[2])
t.log_metrics({"loss": float(sys.argv[2][-1])}, step=0)
t.close()
"""


def test_runs_started_together_on_a_new_store_all_succeed(tmp_path):
    """Four processes open one fresh sqlite store and create one experiment at the same moment (two demos
    started side by side): without the store lock MLflow's schema creation raced and all four crashed."""
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-c", _START_RUN, uri]
    procs = [subprocess.Popen([*cmd, f"run{i}"], stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-600:] for e in errors]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("together").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"run{i}" for i in range(4)]
    assert sorted(r.data.metrics["loss"] for r in runs) == [0.0, 1.0, 2.0, 3.0]
