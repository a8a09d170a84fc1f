"""The main job's HTML report: metric tables, side-by-side frame strips, spectrograms and players."""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl
from PIL import Image

from avtok.eval.artifacts import frame_strip_png, spectrogram_png
from avtok.media_io import AVClip, write_clip

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

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;
font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}
td:first-child,th:first-child{text-align:left}img{max-width:100%;image-rendering:pixelated}
.clip{border-top:2px solid #444;margin-top:1.5em}.players{display:flex;gap:1em;flex-wrap:wrap}
figure{margin:.3em 0}figcaption{font-size:12px;color:#555}video{image-rendering:pixelated;background:#000}
.note{color:#555;font-size:13px}"""


def _cell(v) -> str:
    return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def table_html(df: pl.DataFrame, columns: tuple[str, ...] | None = None) -> str:
    if columns is not None:
        df = df.select([c for c in columns if c in df.columns])
    head = "".join(f"<th>{html.escape(c)} {BETTER.get(c, '')}</th>" for c in df.columns)
    rows = []
    for row in df.iter_rows():
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def _video(out: Path, stem: str, clip: AVClip) -> tuple[Path, Path]:
    """An mp4 with sound plus a poster (its first frame, enlarged) so the player shows a picture at once."""
    scale = max(1, 192 // clip.height)
    first = Image.fromarray(clip.video[0].numpy())
    first.resize((clip.width * scale, clip.height * scale), Image.NEAREST).save(out / f"{stem}_poster.png")
    return write_clip(out / f"{stem}.mp4", clip), out / f"{stem}_poster.png"


def _players(items: list[tuple[str, tuple[Path, Path]]], width: int = 200) -> str:
    cells = [
        f"<figure><video controls preload='metadata' width='{width}' src='{mp4.name}' poster='{poster.name}'>"
        f"</video><figcaption>{html.escape(label)}</figcaption></figure>"
        for label, (mp4, poster) in items
    ]
    return f"<div class='players'>{''.join(cells)}</div>"


def _audio_players(items: list[tuple[str, Path]]) -> str:
    cells = [
        f"<figure><audio controls preload='none' src='{p.name}'></audio>"
        f"<figcaption>{html.escape(label)}</figcaption></figure>"
        for label, p in items
    ]
    return f"<div class='players'>{''.join(cells)}</div>"


def _strip(path: Path, caption: str) -> str:
    """Frame strips are two rows of small frames: shown 3x enlarged (pixelated, no smoothing)."""
    return _figure(path, caption, "height:192px;width:auto")


def _figure(path: Path, caption: str, style: str = "") -> str:
    img = f"<img src='{path.name}' style='{style}'>"
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def tokenizer_sections(
    out: Path,
    clips: list[AVClip],
    outputs: dict[str, dict[int, AVClip]],
    stretch: tuple[AVClip, AVClip] | None,
    *,
    windows: int = 3,
) -> str:
    """Players for a consecutive held-out stretch, then strips + spectrograms of a few scored windows."""
    parts = []
    if stretch is not None:
        ref, rec = stretch
        strip = frame_strip_png(ref, rec, out / "tok_stretch_frames.png", num_frames=12)
        spec = spectrogram_png(
            out / "tok_stretch_mel.png", (ref.audio, ref.sample_rate), (rec.audio, rec.sample_rate)
        )
        players = [
            ("held-out input", _video(out, "tok_stretch_input", ref)),
            ("AV tokenizer reconstruction", _video(out, "tok_stretch_tokenizer", rec)),
        ]
        parts.append(
            f"<div class='clip'><h3>Held-out stretch, {ref.duration:.2f} s from {ref.start:.2f} s "
            f"(reconstructed window by window)</h3>"
            + _strip(strip, "top: held-out input frames; bottom: AV tokenizer reconstruction")
            + _figure(spec, "log-mel: input (top) / tokenizer (bottom)", "width:100%;height:160px")
            + _players(players)
            + "</div>"
        )
    tok = outputs.get("avtok-av", {})
    for i, clip in enumerate(clips[:windows]):
        if id(clip) not in tok:
            continue
        tag = f"tok_w{i:02d}"
        strip = frame_strip_png(clip, tok[id(clip)], out / f"{tag}_frames.png")
        specs = [(clip.audio, clip.sample_rate), (tok[id(clip)].audio, clip.sample_rate)]
        vocoder = outputs.get("ceiling:hifigan(true mel)", {}).get(id(clip))
        if vocoder is not None:
            specs.append((vocoder.audio, clip.sample_rate))
        spec = spectrogram_png(out / f"{tag}_mel.png", *specs)
        caption = "log-mel: input / tokenizer" + (
            " / HiFi-GAN on the true mel (ceiling)" if vocoder is not None else ""
        )
        sounds = [
            ("input", write_clip(out / f"{tag}_input.mp4", clip)),
            ("AV tokenizer", write_clip(out / f"{tag}_tokenizer.mp4", tok[id(clip)])),
        ]
        if vocoder is not None:
            sounds.append(("HiFi-GAN on the true mel", write_clip(out / f"{tag}_hifigan.mp4", vocoder)))
        parts.append(
            f"<div class='clip'><h3>Held-out window {Path(clip.source or 'clip').name} @ {clip.start:.2f} s"
            "</h3>"
            + _strip(strip, "top: input; bottom: AV tokenizer")
            + _figure(spec, caption, "width:100%;height:160px")
            + _audio_players(sounds)
            + "</div>"
        )
    return "\n".join(parts)


def generator_sections(
    out: Path, refs: list[AVClip], clips: dict[str, list[AVClip]], *, shown: int = 2
) -> str:
    parts = []
    for i in range(min(shown, len(refs))):
        ref, tag = refs[i], f"gen_{i:02d}"
        figs = []
        for name, gen in clips.items():
            if i >= len(gen) or name.startswith("ceiling"):
                continue
            strip = frame_strip_png(ref, gen[i], out / f"{tag}_{_slug(name)}_frames.png", num_frames=8)
            paired = "a2v" in name
            figs.append(
                _strip(strip, f"top: real held-out clip{'' if paired else ' (unpaired)'}; bottom: {name}")
            )
        spec_items = [("real", ref)] + [(n, g[i]) for n, g in clips.items() if i < len(g)]
        spec = spectrogram_png(out / f"{tag}_mel.png", *[(c.audio, c.sample_rate) for _, c in spec_items])
        players = [("real held-out clip", _video(out, f"{tag}_real", ref))]
        players += [(n, _video(out, f"{tag}_{_slug(n)}", g[i])) for n, g in clips.items() if i < len(g)]
        parts.append(
            f"<div class='clip'><h3>Sample {i} (reference @ {ref.start:.2f} s)</h3>"
            + "".join(figs)
            + _figure(
                spec,
                "log-mel, top to bottom: " + " / ".join(n for n, _ in spec_items),
                "width:100%;height:260px",
            )
            + _players(players)
            + "</div>"
        )
    return "\n".join(parts)


def write_report(
    out: Path,
    *,
    title: str,
    intro: str,
    facts: dict[str, str],
    recon: pl.DataFrame,
    recon_sections: str,
    recon_clip: pl.DataFrame | None = None,
    generation: pl.DataFrame,
    gen_sections: str,
    notes: list[str],
) -> Path:
    fact_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in facts.items()
    )
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{intro}</p>",
        f"<table><tbody>{fact_rows}</tbody></table>",
        "<h2>1. AV tokenizer: held-out reconstruction</h2>",
        "<p class='note'>avtok-eval on held-out windows never seen in training, next to the trivial "
        "baselines (identity = upper bound; mean frame + silence and repeat-first-frame + silence = floors) "
        "and the media ceilings (h264+aac round trip; HiFi-GAN on the true mel, which bounds the tokenizer's "
        "audio). "
        "Frame FID and FAD on this few frames are small-sample estimates: compare rows, not papers.</p>",
        table_html(recon, RECON_COLUMNS),
        *(
            [
                "<p class='note'>The whole held-out tail as one clip, reconstructed window by window: here "
                "the baselines see the whole tail (its mean frame, its first frame), not each window's own "
                "frames as above.</p>",
                table_html(recon_clip, RECON_COLUMNS),
            ]
            if recon_clip is not None
            else []
        ),
        recon_sections,
        "<h2>2. Twin-DiT generator: sampled clips</h2>",
        "<p class='note'>Set metrics of each generated set against the real held-out clips (frame FID, "
        "FAD) and the per-clip onset-alignment sync score. Floor: the same network untrained; ceiling: the "
        "held-out clips through the generator's latent codec (what a perfect generator could reach).</p>",
        table_html(generation, GEN_COLUMNS),
        gen_sections,
    ]
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
