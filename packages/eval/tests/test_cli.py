import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from avtok.eval.cli import app
from avtok.media_io import AVClip, write_clip

runner = CliRunner()


@pytest.fixture(scope="module")
def folders(tmp_path_factory, concert_clips):
    root = tmp_path_factory.mktemp("cli")
    refs, recs, empty = root / "refs", root / "recs", root / "empty"
    for d in (refs, recs, empty):
        d.mkdir()
    g = torch.Generator().manual_seed(0)
    for i, clip in enumerate(concert_clips):
        write_clip(refs / f"clip{i}.mp4", clip)
        noisy = AVClip.from_float(video=clip.video_float() + 0.05 * torch.randn(clip.video.shape, generator=g),
                                  audio=clip.audio, fps=clip.fps, sample_rate=clip.sample_rate)
        write_clip(recs / f"clip{i}.mp4", noisy)
    return root, refs, recs, empty


def test_recon_scores_folders_logs_and_compares(folders, monkeypatch):
    root, refs, recs, _ = folders
    monkeypatch.chdir(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    res = runner.invoke(app, ["recon", str(refs), str(recs), "--experiment", "cli", "--tracking-uri", uri,
                              "--out", str(root / "out")])
    assert res.exit_code == 0, res.output
    assert "baseline:identity" in res.output and "summary" in res.output
    summary = pl.read_csv(root / "out" / "summary.csv")
    row = summary.filter(pl.col("model") == "folder:recs").row(0, named=True)
    assert 20 < row["psnr"] < 40 and row["clips"] == 2 and row["si_sdr"] > 5
    media = sorted(p.name for p in (root / "out" / "media").iterdir())
    assert media == ["clip0_frames.png", "clip0_mel.png", "clip0_recon.mp4",
                     "clip1_frames.png", "clip1_mel.png", "clip1_recon.mp4"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run_id = client.search_runs([client.get_experiment_by_name("cli").experiment_id])[0].info.run_id
    logged = {a.path for a in client.list_artifacts(run_id, "media")}
    assert logged == {f"media/{m}" for m in media}
    res = runner.invoke(app, ["runs", "compare", "cli", "--tracking-uri", uri, "--csv", str(root / "runs.csv")])
    assert res.exit_code == 0, res.output
    runs = pl.read_csv(root / "runs.csv")
    assert runs.height == 1 and runs["metrics.folder_recs/psnr"][0] == pytest.approx(row["psnr"])


def test_gen_command(folders, aisfx_weights):
    root, refs, recs, _ = folders
    res = runner.invoke(app, ["gen", str(recs), str(refs), "--no-frame-fid", "--out", str(root / "gen")])
    assert res.exit_code == 0, res.output
    table = pl.read_csv(root / "gen" / "generation.csv")
    assert table["set"].to_list() == ["generated", "reference"]
    assert table["fad"][0] == pytest.approx(0.0, abs=1e-3)  # both files carry the same encoded audio
    assert "frame_fid" not in table.columns and table["av_onset_align"].is_finite().all()


def test_empty_and_mismatched_folders_fail_clearly(folders, tmp_path):
    root, refs, recs, empty = folders
    res = runner.invoke(app, ["recon", str(refs), str(empty)])
    assert res.exit_code == 2 and "error: reconstructions" in res.output and "no media files" in res.output
    (tmp_path / "other.mp4").write_bytes((recs / "clip0.mp4").read_bytes())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = runner.invoke(app, ["recon", str(refs), str(tmp_path), "--out", str(tmp_path / "o"),
                              "--experiment", "bad", "--tracking-uri", uri])
    assert res.exit_code == 2 and "no file named clip0" in res.output
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bad").experiment_id])
    assert run.info.status == "FAILED" and "no file named clip0" in run.data.tags["avtok.error"]


def test_errors_are_one_line_exit_2_and_traceback_only_with_debug(folders, tmp_path):
    root, refs, recs, empty = folders
    res = runner.invoke(app, ["recon", str(tmp_path / "missing"), str(recs), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines == [f"error: references {tmp_path / 'missing'}: not a directory; pass a folder of clips "
                     "(.mp4, .mkv, .webm, .mov, .avi, .m4v)"]
    res = runner.invoke(app, ["recon", str(refs), str(recs), "--segment-mb", "0"])
    assert res.exit_code == 2 and "--segment-mb 0.0: must be > 0" in res.output
    res = runner.invoke(app, ["recon", str(tmp_path / "missing"), str(recs), "--debug"])
    assert res.exit_code == 2 and "Traceback (most recent call last)" in res.output
    assert res.output.rstrip().splitlines()[-1].startswith("error: references")
