"""Issue 7 evidence: train the tiny tokenizers on the concert clip (last 10 s held out) and score them.

Runs, each with the same wall-clock budget (``--minutes``):
  1. AV tokenizer, ``--schedule vfal``     2. AV tokenizer, ``--schedule vanilla`` (joint from scratch)
  3. visual tokenizer, ``--schedule atoken`` with the Gram loss   4. the same without it
and prints avtok.eval's held-out summary (video PSNR / SSIM, frame FID, mel L1, MR-STFT, SI-SDR) next to
the trivial baselines, then one line per claim: ``target <name>: <measured> (goal <goal>) met|missed``.

    python tools/evidence_tokenizer.py --minutes 20 --out runs/evidence   # the evidence (~90 min on CPU)
    python tools/evidence_tokenizer.py --minutes 1 --out /tmp/evidence    # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from avtok.tokenizer import recipes_av, recipes_visual
from avtok.tokenizer.recipes import RunConfig, train_tokenizer

HIGHER = {"psnr": True, "ssim": True, "si_sdr": True, "frame_fid": False, "mel_l1": False, "mrstft": False}
TRIVIAL = ("baseline:mean_frame+silence", "baseline:repeat_first_frame+silence")


def run(name: str, cfg: RunConfig, module) -> dict[str, dict[str, float]]:
    print(f"== {name}: {cfg.family} {cfg.schedule} for {cfg.minutes} min", flush=True)
    model, results = train_tokenizer(cfg)
    for r in results:
        print(f"   stage {r.name}: {r.steps} steps", flush=True)
    summary = module.heldout_report(model, module.prepare(cfg).held_out)
    rows = {
        row["model"]: {k: row[k] for k in HIGHER if k in row and row[k] is not None}
        for row in summary.to_dicts()
    }
    for model_name, metrics in rows.items():
        print(f"   {model_name:40s} " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)
    return rows


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="budget per run")
    ap.add_argument("--out", type=Path, default=Path("runs/evidence"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-visual", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    common = dict(
        data="sample:concert",
        holdout_seconds=10.0,
        minutes=args.minutes,
        max_steps=100_000,
        eval_every=500,
        artifacts=False,
    )
    res = {}
    for sched in ("vfal", "vanilla"):
        cfg = RunConfig(
            family="av", preset="tiny", schedule=sched, checkpoint_dir=args.out / f"av-{sched}", **common
        )
        res[f"av-{sched}"] = run(f"av-{sched}", cfg, recipes_av)
    if not args.skip_visual:
        for gram in (True, False):
            tag = "visual-gram" if gram else "visual-nogram"
            cfg = RunConfig(
                family="visual",
                preset="tiny",
                schedule="atoken",
                gram=gram,
                batch_size=4,
                checkpoint_dir=args.out / tag,
                **common,
            )
            res[tag] = run(tag, cfg, recipes_visual)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(res, indent=1))
    av_metrics = ("psnr", "ssim", "frame_fid", "mel_l1", "mrstft", "si_sdr")
    lost = beats_baselines(res["av-vfal"], "avtok-av", av_metrics)
    print(
        f"target vfal_beats_trivial_baselines: {len(av_metrics) - len(set(x.split()[0] for x in lost))}/"
        f"{len(av_metrics)} metrics (goal 6/6) {'met' if not lost else 'missed'}"
    )
    vf, va = res["av-vfal"]["avtok-av"], res["av-vanilla"]["avtok-av"]
    wins = sum((vf[k] < va[k]) if not HIGHER[k] else (vf[k] > va[k]) for k in ("mel_l1", "mrstft", "si_sdr"))
    print(
        f"target vfal_beats_vanilla_on_audio: {wins}/3 audio metrics (mel_l1 {vf['mel_l1']:.4g} vs "
        f"{va['mel_l1']:.4g}) (goal 3/3) {'met' if wins == 3 else 'missed'}"
    )
    if not args.skip_visual:
        g, n = res["visual-gram"]["atoken-visual"], res["visual-nogram"]["atoken-visual"]
        print(
            f"target gram_improves_frame_fid: {g['frame_fid']:.4g} vs {n['frame_fid']:.4g} without "
            f"(goal lower) {'met' if g['frame_fid'] < n['frame_fid'] else 'missed'}"
        )


if __name__ == "__main__":
    main()
