"""Issue 7 evidence: train the tiny tokenizers on the concert clip (last 10 s held out) and score them.

Runs, each with the same wall-clock budget (``--minutes``):
  1. AV tokenizer, ``--schedule vfal``     2. AV tokenizer, ``--schedule vanilla`` (joint from scratch)
  3. visual tokenizer, ``--schedule atoken`` with the Gram loss   4. the same without it
and prints avtok.eval's held-out summary (video PSNR / SSIM, frame FID, mel L1, MR-STFT, SI-SDR) next to
the trivial baselines, then one line per claim: ``target <name>: <measured> (goal <goal>) met|missed``.
Each run saves its model to ``<out>/<run>/final`` (``--rescore`` scores those again without training).

The AV runs are scored two ways (``<run>_clip.json`` and ``<run>.json``):
  * held-out clip (the target): the held-out last 10 s as one clip, reconstructed window by window; the
    trivial baselines are the 10-s clip's mean frame and its first frame repeated (+ silence), as for any
    clip given to ``avtok-tokenizer reconstruct``;
  * held-out windows (stricter, a ``check``): each 8-frame window (0.56 s) scored as its own clip, so the
    baselines get each window's own mean frame / first frame — a per-half-second oracle of 3072 8-bit
    numbers, against the tokenizer's 32-128 tokens of 10 bits.

    python tools/evidence_tokenizer.py --minutes 20 --out runs/evidence   # the evidence (~90 min on CPU)
    python tools/evidence_tokenizer.py --minutes 1 --out /tmp/evidence    # smoke run
    python tools/evidence_tokenizer.py --runs av-vfal,av-vanilla --rescore --out runs/evidence  # score again
    # the AV pair side by side on two cores, then the claims from both results:
    python tools/evidence_tokenizer.py --threads 1 --runs av-vfal & \
    python tools/evidence_tokenizer.py --threads 1 --runs av-vanilla; wait
    python tools/evidence_tokenizer.py --runs none
    python tools/evidence_tokenizer.py --runs none --references   # + video references (~5-8 min)
    # the same AV pair with the `small` preset (4x the video tokens) in its own folder:
    python tools/evidence_tokenizer.py --threads 1 --runs av-vfal --av-preset small --out runs/ev-small
    # another seed of the AV pair (one folder per seed):
    python tools/evidence_tokenizer.py --threads 1 --runs av-vfal --seed 1 --out runs/ev-seed1
    # with the Inception perceptual + Gram video terms (the sharpness terms; 27-80x the step cost):
    python tools/evidence_tokenizer.py --threads 1 --runs av-vfal --av-preset small --perceptual --out runs/p

``--references`` scores two video references fitted on the *training* windows (audio silent) on the same
held-out windows: the training set's mean window (what a decoder that ignores its tokens converges to)
and the PCA-k codec of window-mean frames (k continuous numbers per window, a linear encoder with the
token budget's size). A tokenizer whose video PSNR sits at the first carries no information in its
video tokens; the train-mean window is also scored window after window over the whole held-out clip
(``... (held-out clip)``), the same check for the clip target. Then the rate references: a per-patch
PCA keeping k = 4 / 8 / 16 / 32 continuous numbers per ``--av-preset`` video patch, with a ``check``
line per k saying which trivial baseline it still loses to on PSNR / SSIM / frame FID — the rate a
linear codec needs to meet the per-window comparison.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
from pathlib import Path

import torch
from einops import rearrange

from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip
from avtok.tokenizer.av import recipe as recipes_av
from avtok.tokenizer.av.config import resolve_av_config
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.runner import train_tokenizer
from avtok.tokenizer.visual import recipe as recipes_visual
from avtok.train.pretrained import from_pretrained, save_pretrained

HIGHER = {"psnr": True, "ssim": True, "si_sdr": True, "frame_fid": False, "mel_l1": False, "mrstft": False}
TRIVIAL = ("baseline:mean_frame+silence", "baseline:repeat_first_frame+silence")
UNITS = {
    "clip": "held-out clip: the last 10 s as one clip (reconstructed window by window; the baselines "
    "see the whole 10 s)",
    "windows": "held-out windows: each 8-frame window scored as its own clip (the baselines see each "
    "window's own frames)",
}


def _rows(summary) -> dict[str, dict[str, float]]:
    return {
        row["model"]: {k: row[k] for k in HIGHER if k in row and row[k] is not None}
        for row in summary.to_dicts()
    }


def run(name: str, cfg: RunConfig, module) -> dict[str, dict[str, dict[str, float]]]:
    """Train, save ``<checkpoint_dir>/final``, score: ``{"windows": rows}`` (+ ``"clip"`` for AV runs)."""
    print(f"== {name}: {cfg.family} {cfg.schedule} for {cfg.minutes} min", flush=True)
    model, results = train_tokenizer(cfg, overwrite=True)  # a re-run moves the previous one aside
    for r in results:
        print(f"   stage {r.name}: {r.steps} steps", flush=True)
    save_pretrained(model.cpu().eval(), Path(cfg.checkpoint_dir) / "final")
    return score(model, cfg, module)


def score(model, cfg: RunConfig, module) -> dict[str, dict[str, dict[str, float]]]:
    ctx = module.prepare(cfg)
    out = {"windows": _rows(module.heldout_report(model, ctx.held_out))}
    if cfg.family == "av":  # the whole held-out tail as one clip, reconstructed window by window
        out["clip"] = _rows(module.heldout_report(model, ctx.held_clips))
    for unit, rows in out.items():
        print(f"   -- {UNITS[unit]}", flush=True)
        for model_name, metrics in rows.items():
            print(f"   {model_name:40s} " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)
    return out


def beats_baselines(rows: dict[str, dict[str, float]], model: str, metrics: tuple[str, ...]) -> list[str]:
    """Metrics where the model does NOT beat every trivial baseline."""
    lost = []
    for k in metrics:
        mine = rows[model].get(k)
        for b in TRIVIAL:
            theirs = rows.get(b, {}).get(k)
            if mine is None or theirs is None or (isinstance(mine, float) and math.isnan(mine)):
                continue
            if (mine <= theirs) if HIGHER[k] else (mine >= theirs):
                lost.append(f"{k} vs {b}")
    return lost


RUNS = ("av-vfal", "av-vanilla", "visual-gram", "visual-nogram")
SUFFIX = {"windows": "", "clip": "_clip"}  # <run>.json: the held-out windows; <run>_clip.json: the clip
CLIP = " (held-out clip)"  # references.json: a reference scored on the whole held-out clip


def config(tag: str, args: argparse.Namespace) -> RunConfig:
    common = dict(
        data="sample:concert",
        holdout_seconds=10.0,
        minutes=args.minutes,
        max_steps=100_000,
        eval_every=500,
        artifacts=False,
        checkpoint_dir=args.out / tag,
        seed=args.seed,
    )
    if tag.startswith("av-"):
        # CPU budget: the Inception perceptual/Gram terms (one frame per window at 299x299) cost 27x / 80x
        # an L1 step of small / tiny, the MR-STFT through HiFi-GAN ~50x tiny's; the AR prior stays on.
        return RunConfig(family="av", preset=args.av_preset, schedule=tag[3:], perceptual=args.perceptual,
                         mrstft=False, **common)
    return RunConfig(family="visual", preset="tiny", schedule="atoken", gram=tag == "visual-gram",
                     batch_size=4, **common)


def _silent(clip: AVClip, video: torch.Tensor) -> AVClip:
    """``clip``'s timing with float frames ``video`` (T, H, W, 3) in [-1, 1] and silent audio."""
    return AVClip.from_float(video=video, audio=torch.zeros_like(clip.audio), fps=clip.fps,
                             sample_rate=clip.sample_rate, start=clip.start, source=clip.source)


class TrainMeanVideo:
    """Every held-out window → the mean of the training windows (frame by frame); silent audio. A longer
    clip gets it window after window, the tail from a last window aligned to the clip's end (as
    ``AVClipReconstructor`` cuts it)."""

    name = "reference:train_mean_window+silence"

    def __init__(self, train_video: torch.Tensor) -> None:  # (N, T, H, W, 3) in [-1, 1]
        self.video = train_video.mean(0)

    def reconstruct(self, clip: AVClip) -> AVClip:
        t, n = self.video.shape[0], clip.num_frames
        whole = n - n % t
        return _silent(clip, self.video[[i % t if i < whole else i - (n - t) for i in range(n)]])


class PCAWindowMean:
    """The window's mean frame through a rank-k PCA fitted on the training windows' mean frames, held for
    every frame; silent audio (k continuous numbers per window)."""

    def __init__(self, train_video: torch.Tensor, k: int) -> None:
        x = train_video.double().mean(1).flatten(1)  # (N, H*W*3)
        self.mu = x.mean(0)
        self.basis = torch.linalg.svd(x - self.mu, full_matrices=False).Vh[:k]  # (k, H*W*3)
        self.name = f"reference:pca{k}_window_mean+silence"

    def reconstruct(self, clip: AVClip) -> AVClip:
        frames = clip.video_float().double()
        mean = frames.mean(0).flatten()
        rec = ((mean - self.mu) @ self.basis.T @ self.basis + self.mu).view(1, *frames.shape[1:])
        return _silent(clip, rec.expand_as(frames))


class PatchPCA:
    """Per-patch PCA codec fitted on the training windows: every ``(t, p, p)`` space-time patch → its
    first ``k`` principal components (``k`` continuous, unquantised numbers per patch) → back; silent
    audio. ``with_k`` shares the one SVD across every k."""

    FLAT = "n (t a) (h b) (w c) k -> (n t h w) (a b c k)"

    def __init__(self, train_video: torch.Tensor, patch: tuple[int, int, int], k: int = 8) -> None:
        self.patch, self.k = tuple(patch), k
        x = self._patches(train_video.double())
        self.mu = x.mean(0)
        self.vh = torch.linalg.svd(x - self.mu, full_matrices=False).Vh  # (components, patch_dim)

    def _patches(self, video: torch.Tensor) -> torch.Tensor:
        t, p, q = self.patch
        return rearrange(video, self.FLAT, a=t, b=p, c=q)

    def with_k(self, k: int) -> PatchPCA:
        other = copy.copy(self)
        other.k = k
        return other

    @property
    def name(self) -> str:
        return f"reference:pca{self.k}_per_{'x'.join(map(str, self.patch))}_patch+silence"

    def project(self, video: torch.Tensor) -> torch.Tensor:
        """(N, T, H, W, 3) → the same windows through the rank-k codec (float64)."""
        n, t, h, w, _ = video.shape
        basis = self.vh[: self.k]
        x = (self._patches(video.double()) - self.mu) @ basis.T @ basis + self.mu
        a, b, c = self.patch
        return rearrange(x, "(n t h w) (a b c k) -> n (t a) (h b) (w c) k", n=n, t=t // a, h=h // b,
                         w=w // c, a=a, b=b, c=c)

    def reconstruct(self, clip: AVClip) -> AVClip:
        return _silent(clip, self.project(clip.video_float()[None])[0].float().clamp(-1, 1))


PATCH_PCA_KS = (4, 8, 16, 32)


def references(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The learned video references on the AV runs' held-out windows (see the module docstring)."""
    ctx = recipes_av.prepare(config("av-vanilla", args))
    rows, eval_cfg = {}, ReconstructionConfig(frame_fid=True, baselines=False)
    pca = PatchPCA(ctx.train_video, resolve_av_config(args.av_preset).video_patch)
    refs = (TrainMeanVideo(ctx.train_video), PCAWindowMean(ctx.train_video, 32),
            *(pca.with_k(k) for k in PATCH_PCA_KS))
    jobs = [(ref, ctx.held_out, "") for ref in refs]
    jobs.append((refs[0], ctx.held_clips, CLIP))  # the train-mean window over the whole held-out clip
    for i, (ref, clips, unit) in enumerate(jobs):  # the first also scores the trivial baselines, for report()
        cfg = dataclasses.replace(eval_cfg, baselines=i == 0)
        for row in evaluate_reconstruction(ref, clips, cfg=cfg).summary.to_dicts():
            metrics = {k: row[k] for k in ("psnr", "ssim", "frame_fid") if row.get(k) is not None}
            rows[row["model"] + unit] = metrics
            print(f"   {row['model'] + unit:40s} " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
                  flush=True)
    return rows


def report(out: Path) -> None:
    """The claims, from every ``<run>.json`` under ``out`` (runs may come from separate invocations)."""
    res = {t: json.loads((out / f"{t}.json").read_text()) for t in RUNS if (out / f"{t}.json").is_file()}
    av_metrics = ("psnr", "ssim", "frame_fid", "mel_l1", "mrstft", "si_sdr")
    refs = json.loads((out / "references.json").read_text()) if (out / "references.json").is_file() else {}
    clips = {t: json.loads((out / f"{t}_clip.json").read_text()) for t in ("av-vfal", "av-vanilla")
             if (out / f"{t}_clip.json").is_file()}
    for tag in ("av-vfal", "av-vanilla"):
        for unit, table, suffix in (("windows", res, ""), ("clip", clips, CLIP)):
            mean_ref = refs.get(TrainMeanVideo.name + suffix)
            if tag in table and mean_ref:
                mine = table[tag]["avtok-av"]
                print(f"check {tag}_video_tokens_informative ({UNITS[unit].split(':')[0]}): PSNR "
                      f"{mine['psnr']:.4g} / frame FID {mine['frame_fid']:.4g} vs the train-mean window's "
                      f"{mean_ref['psnr']:.4g} / {mean_ref['frame_fid']:.4g}")
    for name in (n for n in refs if "_patch+" in n):
        lost = beats_baselines(refs, name, ("psnr", "ssim", "frame_fid"))
        print(f"check {name.removeprefix('reference:')}_beats_trivial_baselines: "
              + ("yes" if not lost else "loses " + ", ".join(lost)))
    for tag in ("av-vfal", "av-vanilla"):
        for unit, table in (("clip", clips), ("windows", res)):
            if tag not in table:
                continue
            lost = beats_baselines(table[tag], "avtok-av", av_metrics)
            won = len(av_metrics) - len(set(x.split()[0] for x in lost))
            kind = "target" if (tag, unit) == ("av-vfal", "clip") else "check"
            verdict = "met" if not lost else "missed: " + ", ".join(lost)
            print(f"{kind} {tag[3:]}_beats_trivial_baselines ({UNITS[unit].split(':')[0]}): {won}/"
                  f"{len(av_metrics)} metrics (goal 6/6) {verdict}")
    if "av-vfal" in res and "av-vanilla" in res:
        vf, va = res["av-vfal"]["avtok-av"], res["av-vanilla"]["avtok-av"]
        audio = ("mel_l1", "mrstft", "si_sdr")
        wins = sum((vf[k] < va[k]) if not HIGHER[k] else (vf[k] > va[k]) for k in audio)
        print(
            f"target vfal_beats_vanilla_on_audio: {wins}/3 audio metrics (mel_l1 {vf['mel_l1']:.4g} vs "
            f"{va['mel_l1']:.4g}) (goal 3/3) {'met' if wins == 3 else 'missed'}"
        )
    if "visual-gram" in res and "visual-nogram" in res:
        g, n = res["visual-gram"]["atoken-visual"], res["visual-nogram"]["atoken-visual"]
        print(
            f"target gram_improves_frame_fid: {g['frame_fid']:.4g} vs {n['frame_fid']:.4g} without "
            f"(goal lower) {'met' if g['frame_fid'] < n['frame_fid'] else 'missed'}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="budget per run")
    ap.add_argument("--out", type=Path, default=Path("runs/evidence"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--av-preset", default="tiny", help="AV tokenizer preset of the av-* runs (tiny, small)")
    ap.add_argument("--seed", type=int, default=0,
                    help="RunConfig.seed of every run (model init, data order)")
    ap.add_argument("--perceptual", action="store_true", help="av-* runs: add the Inception perceptual "
                    "(x10) and Gram (x1e3) video terms (off by default: 27-80x an L1 step's cost on CPU)")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma list of {', '.join(RUNS)}; 'none' only "
                    "reports what --out already holds")
    ap.add_argument("--rescore", action="store_true", help="score the --runs already trained under --out "
                    "(their <out>/<run>/final) instead of training them")
    ks = ", ".join(map(str, PATCH_PCA_KS))
    ap.add_argument("--references", action="store_true", help="also score the learned video references "
                    f"(train-mean window, PCA-32 of window means, per-patch PCA at k = {ks} numbers per "
                    "--av-preset patch) on the AV held-out windows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tags = [] if args.runs == "none" else [t.strip() for t in args.runs.split(",")]
    unknown = sorted(set(tags) - set(RUNS))
    if unknown:
        raise SystemExit(f"--runs {unknown}: choose from {', '.join(RUNS)}")
    for tag in tags:
        module = recipes_av if tag.startswith("av-") else recipes_visual
        cfg = config(tag, args)
        if args.rescore:
            final = Path(cfg.checkpoint_dir) / "final"
            print(f"== {tag}: rescoring {final}", flush=True)
            scored = score(from_pretrained(final).eval(), cfg, module)
        else:
            scored = run(tag, cfg, module)
        for unit, rows in scored.items():
            (args.out / f"{tag}{SUFFIX[unit]}.json").write_text(json.dumps(rows, indent=1))
    if args.references:
        (args.out / "references.json").write_text(json.dumps(references(args), indent=1))
    report(args.out)


if __name__ == "__main__":
    main()
