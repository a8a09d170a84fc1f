"""Benchmarks for avtok.kernels: FSQ, Gram loss, packed variable-length attention.

Every comparison is measured side by side in this run (baseline and candidate alternate inside each
repeat) and reported as a ratio of medians. Ends with one line per target:
``target <name>: <measured> (goal <goal>) met|missed`` (GPU targets: ``skipped (no CUDA device)``).

    python tools/bench_kernels.py                    # everything, CPU (+ GPU when present)
    python tools/bench_kernels.py --only fsq --repeats 15
    python tools/bench_kernels.py --quick            # small shapes, a smoke run
    python tools/bench_kernels.py --only threads     # torch ops after a numba FSQ call (subprocesses)

FSQ baseline: vector-quantize-pytorch's FSQ (``pip install 'avtok-kernels[bench]'``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from avtok.kernels import attention, fsq, gram_loss, gram_loss_reference

ATOKEN_LEVELS = (4,) * 6
ATOKEN_GROUPS = 8


@dataclass(kw_only=True)
class Target:
    name: str
    measured: float | None  # None: skipped
    goal: float
    unit: str = "x"
    higher_is_better: bool = True
    skip_reason: str = ""

    def line(self) -> str:
        if self.measured is None:
            return f"target {self.name}: skipped ({self.skip_reason})"
        ok = self.measured >= self.goal if self.higher_is_better else self.measured <= self.goal
        sign = ">=" if self.higher_is_better else "<="
        return (f"target {self.name}: {self.measured:.3g}{self.unit} (goal {sign} {self.goal:g}{self.unit}) "
                f"{'met' if ok else 'missed'}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_side_by_side(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 2,
                       device: torch.device) -> dict[str, float]:
    """Median seconds of each function; the functions alternate within every repeat."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(vals) for name, vals in samples.items()}


def _report(title: str, times: dict[str, float], baseline: str) -> None:
    print(f"\n== {title} (median ms; ratio = {baseline} time / time)")
    for name, sec in times.items():
        print(f"  {name:<28} {sec * 1e3:9.2f} ms   x{times[baseline] / sec:6.2f}")


# --------------------------------------------------------------------------------------------- FSQ
def _vq_fsq(device: torch.device):
    try:
        from vector_quantize_pytorch import FSQ as VQFSQ  # noqa: N811
    except ImportError:
        print("vector-quantize-pytorch missing: pip install 'avtok-kernels[bench]' (FSQ baseline)")
        return None
    return VQFSQ(levels=list(ATOKEN_LEVELS), dim=len(ATOKEN_LEVELS) * ATOKEN_GROUPS,
                 num_codebooks=ATOKEN_GROUPS).to(device)


def bench_fsq(device: torch.device, shape: tuple[int, ...], repeats: int) -> list[Target]:
    gen = torch.Generator(device=device).manual_seed(0)
    z = torch.randn(*shape, generator=gen, device=device) * 1.5
    backend = "numba"
    theirs = _vq_fsq(device)
    ours = fsq(z, ATOKEN_LEVELS, num_groups=ATOKEN_GROUPS, backend=backend)
    fwd = {"copy (z.clone())": z.clone,
           f"avtok fsq [{backend}]": lambda: fsq(z, ATOKEN_LEVELS, num_groups=ATOKEN_GROUPS, backend=backend)}
    if theirs is not None:
        their_codes, their_idx = theirs(z)
        same = torch.equal(their_idx.long(), ours.indices.long()) and torch.equal(their_codes, ours.codes)
        print(f"\nFSQ {tuple(shape)} {device.type}: same codes and indices as vector-quantize-pytorch: "
              f"{same}")
        fwd["vector-quantize-pytorch FSQ"] = lambda: theirs(z)
    t_fwd = timed_side_by_side(fwd, repeats=repeats, device=device)
    _report(f"FSQ forward {tuple(shape)} fp32 {device.type}", t_fwd, "copy (z.clone())")
    grad = torch.randn(*shape, generator=gen, device=device)
    zg = z.clone().requires_grad_()

    def ours_fb():
        fsq(zg, ATOKEN_LEVELS, num_groups=ATOKEN_GROUPS, backend=backend).codes.backward(grad)

    fb = {f"avtok fsq [{backend}] fwd+bwd": ours_fb}
    if theirs is not None:
        fb["vector-quantize-pytorch fwd+bwd"] = lambda: theirs(zg)[0].backward(grad)
    t_fb = timed_side_by_side(fb, repeats=repeats, device=device)
    _report(f"FSQ forward+backward {tuple(shape)} fp32 {device.type}", t_fb, next(iter(fb)))
    return _fsq_targets(device, t_fwd, t_fb, z, backend, theirs is not None)


def _peak_bandwidth(device: torch.device) -> float | None:
    """Theoretical DRAM bandwidth in bytes/s from the device attributes (None if unknown)."""
    try:
        from numba import cuda

        dev = cuda.get_current_device()
        return 2.0 * dev.MEMORY_CLOCK_RATE * 1e3 * dev.GLOBAL_MEMORY_BUS_WIDTH / 8
    except Exception:  # noqa: BLE001 — any failure just means "unknown"
        return None


def _fsq_targets(device, t_fwd, t_fb, z, backend, have_vq) -> list[Target]:
    ours = t_fwd[f"avtok fsq [{backend}]"]
    vq_fwd = t_fwd.get("vector-quantize-pytorch FSQ")
    vq_fb = t_fb.get("vector-quantize-pytorch fwd+bwd")
    skip = "" if have_vq else "vector-quantize-pytorch not installed"
    if device.type == "cpu":
        return [
            Target(name="fsq_cpu_forward_vs_vqpytorch", measured=vq_fwd / ours if vq_fwd else None, goal=8,
                   skip_reason=skip),
            Target(name="fsq_cpu_forward_vs_copy", measured=t_fwd["copy (z.clone())"] / ours, goal=0.7),
            Target(name="fsq_cpu_fwd_bwd_vs_vqpytorch",
                   measured=vq_fb / t_fb[f"avtok fsq [{backend}] fwd+bwd"] if vq_fb else None, goal=3,
                   skip_reason=skip),
        ]
    moved = z.numel() * 4 * 2 + z.numel() // len(ATOKEN_LEVELS) * 4  # read z, write codes + indices
    peak = _peak_bandwidth(device)
    return [
        Target(name="fsq_gpu_forward_vs_vqpytorch", measured=vq_fwd / ours if vq_fwd else None, goal=5,
               skip_reason=skip),
        Target(name="fsq_gpu_forward_bandwidth", measured=100 * moved / ours / peak if peak else None,
               goal=60, unit="%", skip_reason="device bandwidth unknown"),
    ]


# -------------------------------------------------------------------------------------------- Gram
def _gram_errors(fa: list[Tensor], fb: list[Tensor], backend: str) -> tuple[float, float]:
    """Relative error of the loss and the largest max-norm relative error of a layer's gradient."""
    ref = gram_loss_reference(fa, fb)
    g_ref = torch.autograd.grad(ref, fa)
    out = gram_loss(fa, fb, backend=backend)
    g = torch.autograd.grad(out, fa)
    grad_err = max(float((x - y).abs().max() / y.abs().max()) for x, y in zip(g, g_ref, strict=True))
    return abs(out.item() - ref.item()) / ref.item(), grad_err


def bench_gram(device: torch.device, batch: int, repeats: int) -> list[Target]:
    # VGG-like feature pyramid at 224 px (the resolution AToken's perceptual losses use).
    shapes = [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14)]
    gen = torch.Generator(device=device).manual_seed(0)
    fa = [torch.randn(batch, *s, generator=gen, device=device).requires_grad_() for s in shapes]
    fb = [torch.randn(batch, *s, generator=gen, device=device) for s in shapes]

    def step(fn):
        def run():
            for f in fa:
                f.grad = None
            fn().backward()
        return run

    fns = {"torch matmul reference": step(lambda: gram_loss_reference(fa, fb)),
           "avtok gram [sym]": step(lambda: gram_loss(fa, fb, backend="sym"))}
    fns["avtok gram [blas]" if device.type == "cpu" else "avtok gram [cupy]"] = step(
        lambda: gram_loss(fa, fb, backend="blas" if device.type == "cpu" else "cupy"))
    if device.type == "cuda":
        try:
            import cupy  # noqa: F401
        except ImportError:
            fns.pop("avtok gram [cupy]")
    times = timed_side_by_side(fns, repeats=repeats, device=device)
    _report(f"Gram loss fwd+bwd, batch {batch}, layers {shapes} {device.type}", times,
            "torch matmul reference")
    errs = {name: _gram_errors(fa, fb, name.split("[")[1][:-1]) for name in times if "[" in name}
    print("  relative error vs reference (loss, worst layer's grad): "
          + ", ".join(f"{k}: {v[0]:.2e}, {v[1]:.2e}" for k, v in errs.items()))
    errs = {k: max(v) for k, v in errs.items()}
    best = min((n for n in times if "[" in n), key=times.get)
    print(f"  fastest fast path: {best}")
    kind = device.type
    goal = 1.5 if kind == "cpu" else 1.6
    speedup = times["torch matmul reference"] / times[best]
    return [Target(name=f"gram_{kind}_fwd_bwd_vs_matmul", measured=speedup, goal=goal),
            Target(name=f"gram_{kind}_rel_error", measured=errs[best], goal=1e-4, unit="",
                   higher_is_better=False)]


# --------------------------------------------------------------------------------------- attention
def bench_attention(device: torch.device, total: int, repeats: int, compile_flex: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(total // 16, total // 4, (64,), generator=gen)
    lengths = lengths[: int((lengths.cumsum(0) <= total).sum())]
    lengths = torch.cat([lengths, torch.tensor([total - int(lengths.sum())])])
    lengths = lengths[lengths > 0]
    cu = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]).to(torch.int32).to(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    q, k, v = (torch.randn(1, 8, total, 64, device=device, dtype=dtype) for _ in range(3))
    def packed(backend: str) -> Callable[[], Tensor]:
        return lambda: attention(q, k, v, cu_seqlens=cu, causal=True, backend=backend)

    fns = {"SDPA + block-diagonal mask": packed("torch")}
    if device.type == "cuda" or compile_flex:
        attn_mod = importlib.import_module("avtok.kernels.attention")  # the package re-exports the function

        if device.type == "cpu":  # CPU FlexAttention only pays off compiled: opt in for the benchmark
            attn_mod._flex_fns.cache_clear()
            original = attn_mod._flex_fns
            attn_mod._flex_fns = lambda compiled: original(True)  # type: ignore[assignment]
        start = time.perf_counter()
        packed("flex")()
        print(f"\nFlexAttention compile + first call: {time.perf_counter() - start:.1f} s")
        fns["FlexAttention (compiled)"] = packed("flex")
    else:
        fns["FlexAttention (eager)"] = packed("flex")
    try:
        import flash_attn  # noqa: F401

        if device.type == "cuda":
            fns["flash-attn varlen"] = packed("flash")
    except ImportError:
        print("flash-attn not installed: its row is left out")
    times = timed_side_by_side(fns, repeats=repeats, device=device)
    _report(f"packed causal attention, {len(lengths)} segments, {total} tokens, 8 heads x 64, {dtype} "
            f"{device.type}", times, "SDPA + block-diagonal mask")

# ------------------------------------------------------------------ torch ops after a numba FSQ call
def _after_fsq_worker(mode: str, steps: int) -> None:
    """One subprocess: median CPU / wall ms of a 1-thread torch MLP step, after one numba FSQ or not."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256))
    x = torch.randn(64, 256)

    def step() -> None:
        model(x).square().mean().backward()

    for _ in range(10):
        step()
    if mode == "fsq":  # the tiny AV tokenizer's FSQ: one numba forward + backward
        z = torch.randn(1, 96, 48, requires_grad=True)
        fsq(z, ATOKEN_LEVELS, num_groups=ATOKEN_GROUPS, backend="numba").codes.sum().backward()
    cpu, wall = [], []
    for _ in range(steps):
        c0, w0 = time.process_time(), time.perf_counter()
        step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    print(json.dumps({"cpu": statistics.median(cpu), "wall": statistics.median(wall),
                      "torch_threads": torch.get_num_threads()}))


def bench_after_fsq(repeats: int) -> list[Target]:
    runs: dict[str, list[dict]] = {"none": [], "fsq": []}
    for _ in range(max(3, repeats // 2)):
        for mode in runs:  # alternate the two kinds of process
            out = subprocess.run([sys.executable, __file__, "--after-fsq-worker", mode], check=True,
                                 capture_output=True, text=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("cpu", "wall")} for m, rs in runs.items()}
    print("\n== 1-thread torch MLP step (64x256 -> 512 -> 256, fwd+bwd), fresh process each, median ms")
    for mode, m in med.items():
        threads = sorted({r["torch_threads"] for r in runs[mode]})
        print(f"  {'after one numba FSQ' if mode == 'fsq' else 'no FSQ':<22} cpu {m['cpu'] * 1e3:7.2f}  "
              f"wall {m['wall'] * 1e3:7.2f}  torch threads afterwards {threads}")
    ratio = med["fsq"]["cpu"] / med["none"]["cpu"]
    return [Target(name="cpu_torch_step_after_fsq_over_without", measured=ratio, goal=1.25,
                   higher_is_better=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="fsq,threads,gram,attention",
                        help="comma list of fsq, threads, gram, attention")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke run)")
    parser.add_argument("--compile-flex", action="store_true", help="also compile FlexAttention on CPU")
    parser.add_argument("--after-fsq-worker", choices=("none", "fsq"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.after_fsq_worker:
        _after_fsq_worker(args.after_fsq_worker, steps=50)
        return
    only = set(args.only.split(","))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"devices {[d.type for d in devices]}")
    targets: list[Target] = []
    fsq_shape = (4, 1024, 48) if args.quick else (64, 4096, 48)
    for device in devices:
        if "fsq" in only:
            targets += bench_fsq(device, fsq_shape, args.repeats)
        if "threads" in only and device.type == "cpu":
            targets += bench_after_fsq(args.repeats)
        if "gram" in only:
            targets += bench_gram(device, 1 if args.quick else 4, args.repeats)
        if "attention" in only:
            total = 512 if args.quick else (2048 if device.type == "cpu" else 16384)
            bench_attention(device, total, args.repeats, args.compile_flex)
    if not torch.cuda.is_available():
        gpu = [n for n, o in (("fsq_gpu_forward_vs_vqpytorch", "fsq"), ("fsq_gpu_forward_bandwidth", "fsq"),
                              ("gram_cuda_fwd_bwd_vs_matmul", "gram")) if o in only]
        targets += [Target(name=n, measured=None, goal=0, skip_reason="no CUDA device") for n in gpu]
    print()
    for target in targets:
        print(target.line())


if __name__ == "__main__":
    main()
