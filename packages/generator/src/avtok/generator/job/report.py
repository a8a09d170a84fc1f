"""The main job's HTML report: metric tables (each with what its floor / ceiling rows mean), side-by-side
frame strips, spectrograms on one shared dB scale, and players.

Rendered with Jinja2 and autoescape (``report.html.j2`` beside this file): prompts, file names and table
cells are text, never markup. Every media file sits in the report's own folder and is linked by its bare
name, so the folder works as it is, copied, or served as an MLflow artifact folder. Tiny clips are shown at
their native size times an integer factor with nearest-neighbour upscaling, and say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import polars as pl
from PIL import Image

from avtok.eval.artifacts import frame_strip_png, spectrogram_png
from avtok.media_io import AVClip, write_clip

__all__ = [
    "Media",
    "Section",
    "MetricTable",
    "tokenizer_sections",
    "generator_sections",
    "write_report",
    "metric_table",
    "ROW_MEANINGS",
    "RECON_COLUMNS",
    "GEN_COLUMNS",
]

RECON_COLUMNS = (
    "model",
    "clips",
    "psnr",
    "ssim",
    "frame_fid",
    "si_sdr",
    "mrstft",
    "mel_l1",
    "fad",
    "codebook_usage",
    "codebook_perplexity",
    "clips_per_s",
)
GEN_COLUMNS = ("model", "clips", "frame_fid", "fad", "av_onset_align", "av_loudness_motion")
BETTER = {
    "psnr": "↑",
    "ssim": "↑",
    "si_sdr": "↑",
    "frame_fid": "↓",
    "fad": "↓",
    "mrstft": "↓",
    "mel_l1": "↓",
    "av_onset_align": "↑ (real clips' value is the target)",
    "av_loudness_motion": "↑ (real clips' value is the target)",
}
# What each reference row of a table means (shown under every table that has the row).
ROW_MEANINGS = {
    "baseline:identity": "ceiling: the input itself (PSNR ∞, SSIM 1); checks the metrics, not a model",
    "baseline:mean_frame+silence": "floor: every frame replaced by the mean frame, silent audio; a model "
    "must beat it to have learnt anything about the pictures",
    "baseline:repeat_first_frame+silence": "floor: the first frame held for the whole window, silent audio",
    "ceiling:h264+aac": "media ceiling: an h264 + AAC round trip of the input (what a standard lossy codec "
    "keeps)",
    "ceiling:hifigan(true mel)": "audio ceiling: HiFi-GAN on the input's true log-mel, video untouched; "
    "bounds the tokenizer's audio, which is decoded by the same vocoder",
    "floor:untrained t2av": "floor: the same twin DiT with untrained weights, same prompt and seeds",
    "ceiling:latent round trip": "ceiling: the held-out clips encoded and decoded by the generator's latent "
    "codec (what a perfect generator could reach)",
    "a2v (held-out audio)": "a2v keeps the given held-out audio latents, so its audio IS the latent round "
    "trip's: its FAD equals the ceiling's by construction and says nothing about the generator (judge a2v "
    "by its video columns and its sync)",
    "real held-out clips": "the references themselves: frame FID 0 by definition; their AV sync is the "
    "target",
}
SCALE_TARGET = 192  # px: tiny clips are shown at the largest integer factor up to about this height


@dataclass(kw_only=True)
class Media:
    """One image / plot / video / audio in the report folder, linked by its bare file name."""

    kind: str  # img (frames, nearest-neighbour), plot (spectrogram), video, audio
    src: str
    caption: str
    frame_width: int = 0  # native pixels of one frame (img / video)
    frame_height: int = 0
    scale: int = 1  # integer nearest-neighbour factor
    display_width: int = 0
    display_height: int = 0
    poster: str = ""


@dataclass(kw_only=True)
class Section:
    title: str
    figures: list[Media] = field(default_factory=list)
    players: list[Media] = field(default_factory=list)


@dataclass(kw_only=True)
class MetricTable:
    title: str
    note: str
    columns: list[str]
    rows: list[list[str]]
    legend: list[tuple[str, str]]


def _scale(height: int) -> int:
    return max(1, SCALE_TARGET // max(height, 1))


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "∞" if v == math.inf else "−∞" if v == -math.inf else "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def metric_table(df: pl.DataFrame, columns: tuple[str, ...], *, title: str, note: str) -> MetricTable:
    """A table's text cells plus the meaning of each reference row it holds (:data:`ROW_MEANINGS`)."""
    df = df.select([c for c in columns if c in df.columns])
    names = [str(m) for m in df["model"]] if "model" in df.columns else []
    legend = [(n, ROW_MEANINGS[n]) for n in names if n in ROW_MEANINGS]
    rows = [[_cell(v) for v in row] for row in df.iter_rows()]
    return MetricTable(title=title, note=note, columns=list(df.columns), rows=rows, legend=legend)


def _strip(path: Path, clip: AVClip, caption: str) -> Media:
    w, h = Image.open(path).size
    k = _scale(clip.height)
    return Media(
        kind="img",
        src=path.name,
        caption=caption,
        frame_width=clip.width,
        frame_height=clip.height,
        scale=k,
        display_width=w * k,
        display_height=h * k,
    )


def _spectrogram(path: Path, audios: list[tuple[str, AVClip]], caption: str) -> Media:
    spectrogram_png(path, *[(c.audio, c.sample_rate) for _, c in audios], labels=[n for n, _ in audios])
    return Media(kind="plot", src=path.name, caption=caption)


def _video(out: Path, stem: str, clip: AVClip, caption: str) -> Media:
    """An mp4 with sound and its first frame as the poster (native size; the page upscales both)."""
    Image.fromarray(clip.video[0].numpy()).save(out / f"{stem}_poster.png")
    write_clip(out / f"{stem}.mp4", clip)
    k = _scale(clip.height)
    return Media(
        kind="video",
        src=f"{stem}.mp4",
        poster=f"{stem}_poster.png",
        caption=caption,
        frame_width=clip.width,
        frame_height=clip.height,
        scale=k,
        display_width=clip.width * k,
        display_height=clip.height * k,
    )


def _audio(out: Path, stem: str, clip: AVClip, caption: str) -> Media:
    return Media(kind="audio", src=write_clip(out / f"{stem}.mp4", clip).name, caption=caption)


def tokenizer_sections(
    out: Path,
    clips: list[AVClip],
    outputs: dict[str, dict[int, AVClip]],
    stretch: tuple[AVClip, AVClip] | None,
    *,
    windows: int = 3,
) -> list[Section]:
    """Players for a consecutive held-out stretch, then strips + spectrograms of a few scored windows."""
    sections = []
    if stretch is not None:
        ref, rec = stretch
        strip = frame_strip_png(ref, rec, out / "tok_stretch_frames.png", num_frames=12)
        sections.append(Section(
            title=f"Held-out stretch, {ref.duration:.2f} s from {ref.start:.2f} s "
                  "(reconstructed window by window)",
            figures=[_strip(strip, ref, "top: held-out input frames; bottom: AV tokenizer reconstruction"),
                     _spectrogram(out / "tok_stretch_mel.png", [("input", ref), ("AV tokenizer", rec)],
                                  "log-mel, one dB scale: input (top) / tokenizer (bottom)")],
            players=[_video(out, "tok_stretch_input", ref, "held-out input"),
                     _video(out, "tok_stretch_tokenizer", rec, "AV tokenizer reconstruction")],
        ))  # fmt: skip
    tok = outputs.get("avtok-av", {})
    for i, clip in enumerate(clips[:windows]):
        if id(clip) not in tok:
            continue
        tag, rec = f"tok_w{i:02d}", tok[id(clip)]
        audios = [("input", clip), ("AV tokenizer", rec)]
        vocoder = outputs.get("ceiling:hifigan(true mel)", {}).get(id(clip))
        if vocoder is not None:
            audios.append(("HiFi-GAN on the true mel (ceiling)", vocoder))
        strip = frame_strip_png(clip, rec, out / f"{tag}_frames.png")
        sections.append(Section(
            title=f"Held-out window {Path(clip.source or 'clip').name} @ {clip.start:.2f} s",
            figures=[_strip(strip, clip, "top: input; bottom: AV tokenizer"),
                     _spectrogram(out / f"{tag}_mel.png", audios,
                                  "log-mel, one dB scale: " + " / ".join(n for n, _ in audios))],
            players=[_audio(out, f"{tag}_{stem}", c, name)
                     for (name, c), stem in zip(audios, ("input", "tokenizer", "hifigan")[: len(audios)],
                                                strict=True)],
        ))  # fmt: skip
    return sections


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def generator_sections(
    out: Path, refs: list[AVClip], clips: dict[str, list[AVClip]], *, shown: int = 2
) -> list[Section]:
    """Per shown sample: frame strips of each generated set under the real clip, one spectrogram figure of
    all of them on one dB scale, and players."""
    sections = []
    for i in range(min(shown, len(refs))):
        ref, tag = refs[i], f"gen_{i:02d}"
        figures = []
        for name, gen in clips.items():
            if i >= len(gen) or name.startswith("ceiling"):
                continue
            strip = frame_strip_png(ref, gen[i], out / f"{tag}_{_slug(name)}_frames.png", num_frames=8)
            paired = "" if "a2v" in name else " (unpaired)"
            figures.append(_strip(strip, ref, f"top: real held-out clip{paired}; bottom: {name}"))
        audios = [("real", ref)] + [(n, g[i]) for n, g in clips.items() if i < len(g)]
        figures.append(
            _spectrogram(
                out / f"{tag}_mel.png",
                audios,
                "log-mel, one dB scale, top to bottom: " + " / ".join(n for n, _ in audios),
            )
        )
        players = [_video(out, f"{tag}_real", ref, "real held-out clip")]
        players += [_video(out, f"{tag}_{_slug(n)}", g[i], n) for n, g in clips.items() if i < len(g)]
        sections.append(
            Section(title=f"Sample {i} (reference @ {ref.start:.2f} s)", figures=figures, players=players)
        )
    return sections


RECON_NOTE = (
    "avtok-eval on held-out windows never seen in training, next to the trivial baselines and the "
    "media ceilings listed under the table. Frame FID and FAD on this few frames are small-sample "
    "estimates: compare rows, not papers."
)
RECON_CLIP_NOTE = (
    "The whole held-out tail as one clip, reconstructed window by window: here the baselines see "
    "the whole tail (its mean frame, its first frame), not each window's own frames as above."
)
GEN_NOTE = (
    "Set metrics of each generated set against the real held-out clips (frame FID, FAD) and the "
    "per-clip onset-alignment sync score; the reference rows are explained under the table."
)


def _environment() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(Path(__file__).parent))
    return jinja2.Environment(
        loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )


def write_report(
    out: Path,
    *,
    title: str,
    intro: str,
    facts: dict[str, str],
    recon: pl.DataFrame,
    recon_sections: list[Section],
    recon_clip: pl.DataFrame | None = None,
    generation: pl.DataFrame,
    gen_sections: list[Section],
    notes: list[str],
) -> Path:
    """Render ``report.html`` in ``out`` (every argument is text: markup in it is shown, not run)."""
    recon_tables = [
        metric_table(recon, RECON_COLUMNS, title="Held-out windows (mean over windows)", note=RECON_NOTE)
    ]
    if recon_clip is not None:
        recon_tables.append(
            metric_table(
                recon_clip, RECON_COLUMNS, title="The whole held-out tail as one clip", note=RECON_CLIP_NOTE
            )
        )
    gen_tables = [
        metric_table(generation, GEN_COLUMNS, title="Generated sets vs held-out clips", note=GEN_NOTE)
    ]
    page = _environment().get_template("report.html.j2").render(
        title=title, intro=intro, facts=facts, better=BETTER, recon_tables=recon_tables,
        recon_sections=recon_sections, gen_tables=gen_tables, gen_sections=gen_sections, notes=notes,
    )  # fmt: skip
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
