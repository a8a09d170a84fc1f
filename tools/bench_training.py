"""Benchmark the shared training runtime (avtok.train) against plain PyTorch, side by side.

1. Loop overhead: seconds per optimiser step of ``Trainer`` (AdamW + warmup-cosine, clipping, NaN guard,
   logging every 10 steps, progress bar off) vs a hand-written loop doing the same forward/backward/AdamW/
   clip/scheduler work on the same model and batches. EMA is timed as its own row (it is extra work).
2. MR-STFT loss (information, no target): the training loss (fp32, no sync-inducing NaN checks) vs
   avtok-eval's metric ``mrstft_distance`` (float64) as a loss, forward + backward on 1 s of the real song.
   On CPU float64 FFTs cost about the same; the fp32 loss exists for GPU throughput and the NaN guard.

Medians of per-step times, the loops interleaved step by step (the machine is shared).
Run:  python tools/bench_training.py  (≈15–60 s on a busy 2-core CPU)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from avtok.eval.audio_metrics import mrstft_distance
from avtok.media_io import read_audio
from avtok.media_io.samples import sample_path
from avtok.tokenizer.losses import mrstft_loss
from avtok.train import ResumableLoader, TrainConfig, Trainer, build_optimizer, build_scheduler

DIM, BATCH = 256, 32


def _model() -> nn.Module:
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.LayerNorm(DIM), nn.Linear(DIM, 4 * DIM), nn.GELU(), nn.Linear(4 * DIM, DIM))
              for _ in range(4)]
    return nn.Sequential(*blocks, nn.Linear(DIM, DIM))


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH * 8, DIM, generator=g)
    return list(zip(x, torch.randn(BATCH * 8, DIM, generator=g), strict=True))


def _step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    x, y = batch
    return {"loss": (model(x) - y).square().mean()}


def _cfg(steps: int, ema: float | None) -> TrainConfig:
    return TrainConfig(lr=1e-4, min_lr=1e-5, warmup_steps=2, max_steps=steps, ema_decay=ema, log_every=10,
                       clip_grad_norm=1.0, progress=False)


def _plain_stepper():
    model, loader = _model(), ResumableLoader(_data(), batch_size=BATCH)
    cfg = _cfg(10**6, None)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)

    def one() -> None:
        loss = _step(model, next(loader))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()

    return one


def _trainer_stepper(ema: float | None):
    trainer = Trainer(_model(), _step, ResumableLoader(_data(), batch_size=BATCH), _cfg(10**6, ema))
    start = time.monotonic()

    def one() -> None:  # the body of Trainer.fit's loop
        trainer._after_step(trainer.train_step(), start)

    return one


def time_interleaved(steps: int) -> dict[str, list[float]]:
    """Per-step times, the three loops alternating step by step so machine load hits them alike."""
    steppers = {"plain": _plain_stepper(), "trainer": _trainer_stepper(None),
                "trainer+ema": _trainer_stepper(0.9999)}
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for i in range(steps + 2):
        for name, one in steppers.items():
            t0 = time.perf_counter()
            one()
            if i >= 2:  # two warm-up steps
                times[name].append(time.perf_counter() - t0)
    return times


def time_mrstft(fn, wave: torch.Tensor, repeats: int) -> float:
    noisy = wave + 0.05 * torch.randn_like(wave)
    times = []
    for _ in range(repeats):
        pred = noisy.clone().requires_grad_(True)
        t0 = time.perf_counter()
        fn(pred, wave).mean().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _target(name: str, measured: float, goal: str, met: bool) -> str:
    return f"target {name}: {measured:.3f} (goal {goal}) {'met' if met else 'missed'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread: less sensitive to the other users of the 2 cores
    rows = time_interleaved(args.steps)
    med = {k: statistics.median(v) for k, v in rows.items()}
    params = sum(p.numel() for p in _model().parameters())
    print(f"model {params / 1e6:.1f}M params, batch {BATCH}, {args.steps} interleaved steps each (medians)")
    for name, sec in med.items():
        print(f"  {name:12s} {1000 * sec:8.1f} ms/step   ratio vs plain {sec / med['plain']:.3f}")

    wave, _ = read_audio(sample_path("song"), start=2.0, duration=1.0, sample_rate=22050, channels=1)
    fp32 = time_mrstft(mrstft_loss, wave, args.repeats * 2)
    fp64 = time_mrstft(mrstft_distance, wave, args.repeats * 2)
    print(f"  mrstft_loss (fp32) {1000 * fp32:.1f} ms   eval mrstft_distance (fp64) {1000 * fp64:.1f} ms "
          f"  speed-up {fp64 / fp32:.2f}x")

    overhead = med["trainer"] / med["plain"]
    print(_target("trainer_overhead_ratio", overhead, "<= 1.10", overhead <= 1.10))
    ema_ratio = med["trainer+ema"] / med["plain"]
    print(_target("trainer_with_ema_ratio", ema_ratio, "<= 1.25", ema_ratio <= 1.25))


if __name__ == "__main__":
    main()
