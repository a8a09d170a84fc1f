"""tools/gpu_check.py's parts that probe the machine: environment, imports, kernel benchmarks."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import torch

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' spec sheets, matched on the device name.
BF16_PEAK = (
    ("H100 PCIe", 756e12),
    ("H100", 989.4e12),  # SXM / HBM3
    ("H200", 989.4e12),
    ("H20", 148e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("B200", 2250e12),
)
VERSIONS = (
    "torch",
    "torchaudio",
    "triton",
    "numpy",
    "numba",
    "numba-cuda",
    "cupy-cuda13x",
    "cupy-cuda12x",
    "transformers",
    "einops",
    "safetensors",
    "pytest",
    "vector-quantize-pytorch",
)


def spec_peak_bf16(name: str) -> float | None:
    """The card's dense bf16 peak in FLOP/s, or None for a card not in the table."""
    return next((peak for key, peak in BF16_PEAK if key in name), None)


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _matmul_tflops(n: int = 8192, repeats: int = 10) -> float:
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def environment(*, dry: bool, missing: tuple[str, ...]) -> dict:
    """Versions, the device and its measured bf16 matmul rate, and which optional modules are absent."""
    data: dict = {
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in VERSIONS},
        "absent_modules": [m for m in missing if importlib.util.find_spec(m) is None],
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
    }
    if dry or not torch.cuda.is_available():
        return data
    props = torch.cuda.get_device_properties(0)
    data.update(
        {
            "device": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "bf16_spec_peak_tflops": (spec_peak_bf16(props.name) or 0) / 1e12 or None,
            "bf16_matmul_tflops_measured": round(_matmul_tflops(), 1),
        }
    )
    return data


def check_imports(modules: tuple[str, ...]) -> dict:
    """Import each module (the blocker of the device's missing modules is already in place in --dry-run)."""
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - every failure is the finding
            failed[name] = f"{type(err).__name__}: {err}"
    loaded = sorted(m for m in sys.modules if m.startswith("avtok."))
    if failed:
        raise RuntimeError(
            "modules that do not import: " + "; ".join(f"{k} ({v})" for k, v in failed.items())
        )
    return {"checked": list(modules), "avtok_modules_loaded": len(loaded)}


GPU_TARGETS = (
    "fsq_gpu_forward_vs_vqpytorch",
    "fsq_gpu_forward_bandwidth",
    "gram_cuda_fwd_bwd_vs_matmul",
    "gram_cuda_rel_error",
)


def kernel_benchmarks(*, dry: bool, repeats: int = 7) -> dict:
    """bench_kernels' GPU runs: FSQ (64, 4096, 48), Gram at batch 4, packed attention over 16k tokens."""
    bench = importlib.import_module("bench_kernels")  # tools/ is on the part's path
    calls = {
        "fsq": (bench.bench_fsq, ("device", "shape", "repeats")),
        "gram": (bench.bench_gram, ("device", "batch", "repeats")),
        "attention": (bench.bench_attention, ("device", "total", "repeats", "compile_flex")),
    }
    for key, (fn, params) in calls.items():  # the dry run checks the benchmark's interface did not drift
        got = tuple(inspect.signature(fn).parameters)
        if got != params:
            raise RuntimeError(f"tools/bench_kernels.py: bench_{key}{got} changed; expected {params}")
    if dry:
        return {
            "targets_expected": list(GPU_TARGETS),
            "vq_available": importlib.util.find_spec("vector_quantize_pytorch") is not None,
        }
    cuda = torch.device("cuda")
    targets = bench.bench_fsq(cuda, (64, 4096, 48), repeats)
    targets += bench.bench_gram(cuda, 4, repeats)
    bench.bench_attention(cuda, 16384, repeats, False)
    return {
        "targets": [
            {"name": t.name, "measured": t.measured, "goal": t.goal, "unit": t.unit, "line": t.line()}
            for t in targets
        ]
    }
