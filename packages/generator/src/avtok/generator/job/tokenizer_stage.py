"""The main job's tokenizer phase: train (or reuse) the AV tokenizer with VFAL, then score its
reconstructions of the held-out windows next to the trivial baselines and the media "codec ceilings"."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.eval.tracking import Tracker
from avtok.media_io import AVClip, MelConfig, log_mel, mel_to_wave, read_clip, write_clip
from avtok.tokenizer.av import recipe as recipes_av
from avtok.tokenizer.av.clip import AVClipReconstructor
from avtok.tokenizer.av.model import AVTokenizer
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.runner import train_tokenizer
from avtok.tokenizer.window_data import heldout_windows, join_windows
from avtok.train.pretrained import save_pretrained

MEL = MelConfig()  # the HiFi-GAN universal vocoder's analysis settings (the tokenizer's mel)


@dataclass(kw_only=True)
class TokenizerResult:
    model: AVTokenizer
    stages: list[dict]  # name, start_step, steps, reused
    reused: bool  # every stage came from an earlier run's checkpoints
    held_out: list[AVClip] = field(default_factory=list)  # held-out windows
    held_clips: list[AVClip] = field(default_factory=list)  # each file's whole held-out tail

    @property
    def steps(self) -> int:
        return sum(s["steps"] for s in self.stages)

    @property
    def new_steps(self) -> int:
        return sum(s["steps"] - s["start_step"] for s in self.stages)


# ---------------------------------------------------------------- training


def train_or_reuse(run: RunConfig, tracker: Tracker) -> TokenizerResult:
    """``train_tokenizer(resume=True)``: stages an earlier run finished (on their step target or on this
    run's time budget) are loaded as they are; an interrupted one resumes exactly."""
    model, results = train_tokenizer(run, tracker=tracker, resume=True)
    stages = [
        {
            "name": r.name,
            "start_step": r.start_step if not r.skipped else r.steps,
            "steps": r.steps,
            "reused": r.skipped,
        }
        for r in results
    ]
    reused = all(r.skipped for r in results)
    final = run.checkpoint_dir / "final"
    if not reused or not (final / "config.json").is_file():
        # a loadable folder like `avtok-tokenizer train` writes: `avtok-tokenizer info <cache>/tokenizer`,
        # from_pretrained(<cache>/tokenizer/final), or --tokenizer of the generator CLIs
        save_pretrained(model.eval(), final)
    return TokenizerResult(model=model.eval(), stages=stages, reused=reused)


# ---------------------------------------------------------------- media ceilings (eval's Reconstructor)


def _with_audio(clip: AVClip, audio: torch.Tensor) -> AVClip:
    n = clip.audio.shape[-1]
    audio = torch.nn.functional.pad(audio, (0, max(0, n - audio.shape[-1])))[..., :n]
    return AVClip(
        video=clip.video,
        audio=audio.contiguous(),
        fps=clip.fps,
        sample_rate=clip.sample_rate,
        start=clip.start,
        source=clip.source,
    )


class Recorded:
    """Wraps a Reconstructor and keeps its outputs, so the report reuses what evaluation computed."""

    def __init__(self, model) -> None:
        self.model, self.name, self.outputs = model, model.name, {}

    @property
    def last_indices(self):
        return getattr(self.model, "last_indices", None)

    def reconstruct(self, clip: AVClip) -> AVClip:
        out = self.outputs[id(clip)] = self.model.reconstruct(clip)
        return out


class CodecRoundTrip:
    """Write an h264 + AAC mp4 with media-io and read it back at the same rates and size."""

    name = "ceiling:h264+aac"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def reconstruct(self, clip: AVClip) -> AVClip:
        path = write_clip(self.workdir / "roundtrip.mp4", clip)
        back = read_clip(
            path,
            fps=clip.fps,
            size=(clip.height, clip.width),
            sample_rate=clip.sample_rate,
            channels=clip.channels,
            duration=clip.duration,
        )
        frames = min(back.num_frames, clip.num_frames)
        video = torch.cat(
            [back.video[:frames], back.video[frames - 1 :].expand(clip.num_frames - frames, -1, -1, -1)]
        )
        return _with_audio(
            AVClip(
                video=video,
                audio=back.audio,
                fps=clip.fps,
                sample_rate=clip.sample_rate,
                start=clip.start,
                source=clip.source,
            ),
            back.audio,
        )


class VocoderRoundTrip:
    """Audio -> log-mel -> HiFi-GAN -> waveform, video untouched: the best the tokenizer's audio path
    (which decodes a mel with the same vocoder) could reach."""

    name = "ceiling:hifigan(true mel)"

    def reconstruct(self, clip: AVClip) -> AVClip:
        wave = clip.audio.mean(0)  # (N,) the vocoder is mono
        if clip.sample_rate != MEL.sample_rate:
            wave = AF.resample(wave, clip.sample_rate, MEL.sample_rate)
        with torch.no_grad():
            out = mel_to_wave(log_mel(wave, MEL), MEL)  # (frames * hop,)
        if clip.sample_rate != MEL.sample_rate:
            out = AF.resample(out, MEL.sample_rate, clip.sample_rate)
        return _with_audio(clip, out.expand(clip.channels, -1))


# ---------------------------------------------------------------- evaluation


@dataclass(kw_only=True)
class TokenizerEval:
    summary: pl.DataFrame  # one row per model (tokenizer, baselines, ceilings)
    per_clip: pl.DataFrame
    models: dict[str, Recorded]  # their outputs per held-out window, for the report
    fad_note: str
    clip_summary: pl.DataFrame | None = None  # the whole held-out tail as one clip, with its baselines


def fad_available() -> tuple[bool, str]:
    try:
        from avtok.eval.audio_embedding import aisfx_checkpoint_path

        aisfx_checkpoint_path()
        return True, ""
    except (ImportError, ModuleNotFoundError) as err:
        return False, f"FAD not computed: {err}"


def evaluate_tokenizer(
    result: TokenizerResult, workdir: Path, *, frame_stride: int, reference_rows: bool
) -> TokenizerEval:
    """avtok.eval's reconstruction report of the tokenizer + baselines (+ the media ceilings)."""
    fad, note = fad_available()
    clips = result.held_out
    rec = Recorded(AVClipReconstructor(result.model))
    models = {rec.name: rec}
    cfg = ReconstructionConfig(
        frame_fid=True, fad=fad, frame_stride=frame_stride, codebook_size=result.model.config.codebook_size
    )
    reports = [
        evaluate_reconstruction(
            rec, tqdm(clips, desc="scoring tokenizer + baselines", unit="window"), cfg=cfg
        )
    ]
    if reference_rows:
        for model in (CodecRoundTrip(workdir), VocoderRoundTrip()):
            models[model.name] = Recorded(model)
            ceil_cfg = ReconstructionConfig(
                frame_fid=True, fad=fad, frame_stride=frame_stride, baselines=False
            )
            reports.append(
                evaluate_reconstruction(
                    models[model.name], tqdm(clips, desc=f"scoring {model.name}", unit="window"), cfg=ceil_cfg
                )
            )
    summary = pl.concat([r.summary for r in reports], how="diagonal_relaxed")
    per_clip = pl.concat([r.per_clip for r in reports], how="diagonal_relaxed")
    clip_summary = None
    if result.held_clips:  # window by window; the baselines see the whole tail (no FAD on a clip or two)
        clip_summary = recipes_av.heldout_report(result.model, result.held_clips, frame_stride=frame_stride)
    return TokenizerEval(summary=summary, per_clip=per_clip, models=models, fad_note=note,
                         clip_summary=clip_summary)


def held_out_stretch(run: RunConfig, model: AVTokenizer, windows: int) -> tuple[AVClip, AVClip] | None:
    """The first ``windows`` whole held-out windows of the first clip as one clip, and its
    window-by-window reconstruction (for the report's players)."""
    held = heldout_windows(run.data, recipes_av.window_config(run), holdout_seconds=run.holdout_seconds)
    first = [s for s in held if s.source == held[0].source][:windows]  # the first file's held-out windows
    ref = join_windows(first)[0]
    return ref, AVClipReconstructor(model).reconstruct(ref)  # window by window


def prepare_held_out(run: RunConfig) -> tuple[list[AVClip], list[AVClip]]:
    """The held-out windows and each file's whole held-out tail."""
    ctx = recipes_av.prepare(run)
    return ctx.held_out, ctx.held_clips
