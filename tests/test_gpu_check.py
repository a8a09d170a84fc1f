"""tools/gpu_check.py cannot rot: its dry run (CPU, the GPU image's missing modules blocked) passes in CI.

The dry run collects the same ``gpu`` tests, imports every module the check needs without PyAV / polars /
mlflow / the weight packages, checks bench_kernels' interface and the travelling wheels' requirements,
and (slow) runs the throughput and main-job smoke parts at tiny sizes on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(TOOLS))
    import gpu_check

    return gpu_check


def _env(**extra: str) -> dict[str, str]:
    src = [str(p) for p in sorted((ROOT / "packages").glob("*/src"))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*src, str(TOOLS)]), **extra}


def _dry_run(tmp_path: Path, parts: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "gpu_check.py"), "--dry-run", "--only", parts, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    failed = {p["name"]: p["error"] for p in summary["parts"] if p["status"] != "passed"}
    assert proc.returncode == 0 and not failed, f"{failed}\n{proc.stdout[-3000:]}"
    assert (tmp_path / "gpu_check.md").is_file() and (tmp_path / "gpu_check.log").is_file()
    return summary


@pytest.mark.slow  # ~1-2 min on a busy 2-core box: five fresh interpreters and a pytest collection
def test_dry_run_collects_gpu_tests_and_imports_without_device_missing_modules(tmp_path, gpu_check):
    summary = _dry_run(tmp_path, "env,imports,tests,bench")
    parts = {p["name"]: p["data"] for p in summary["parts"]}
    collected = parts["tests"]["collected"]
    files = gpu_check.gpu_test_files()
    assert files and {str(f.relative_to(ROOT)) for f in files} == set(parts["tests"]["files"])
    for f in files:  # every file with a gpu marker contributes at least one collected test
        assert any(t.startswith(str(f.relative_to(ROOT))) for t in collected), f
    assert set(gpu_check.IMPORT_SET) == set(parts["imports"]["checked"])
    assert {"av", "polars", "mlflow"} <= set(parts["env"]["absent_modules"])  # blocked in the dry run
    assert summary["wheels"]["missing_requirements"] == []
    lines = summary["targets"]
    assert len(lines) == 4 and all(t.startswith("target ") and "dry run" in t for t in lines)


@pytest.mark.slow
def test_dry_run_throughput_and_smoke_on_cpu(tmp_path):
    summary = _dry_run(tmp_path, "throughput,smoke")
    parts = {p["name"]: p["data"] for p in summary["parts"]}
    rows = parts["throughput"]["rows"]
    assert [r["family"] for r in rows] == ["visual", "av", "twin-dit", "ar"]
    assert all(r["loss_finite"] and r["tokens_per_s"] > 0 and r["tflops"] >= 0 for r in rows)
    smoke = parts["smoke"]
    assert [s["name"] for s in smoke["tokenizer"]["stages"]] == ["video", "audio", "decoders"]
    assert smoke["generator"]["steps"] == 2 and smoke["generator"]["finite"]


def test_blocked_modules_are_absent_and_media_io_still_imports():
    code = (
        "import importlib.util, sys\n"
        "sys.path.insert(0, sys.argv[1]); import gpu_check; gpu_check.install_blocker_from_env()\n"
        "assert importlib.util.find_spec('av') is None and importlib.util.find_spec('polars') is None\n"
        "import avtok.eval, avtok.media_io\n"
        "from avtok.media_io.pyav import av\n"
        "try:\n    av.open\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(TOOLS)],
        capture_output=True,
        text=True,
        env=_env(AVTOK_GPU_CHECK_BLOCK="av,polars,mlflow"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ERR reading or writing media needs PyAV" in proc.stdout and "pip install" in proc.stdout


def test_wheel_closure_names_what_the_device_lacks(gpu_check, monkeypatch):
    pins = gpu_check.wheel_pins()
    assert set(pins) == set(gpu_check.TRAVEL_WHEELS)
    assert gpu_check.check_wheel_closure(pins) == []
    monkeypatch.setattr(gpu_check, "DEVICE_HAS", gpu_check.DEVICE_HAS - {"sympy"})
    assert any(m.startswith("einx needs sympy") for m in gpu_check.check_wheel_closure(pins))


def test_report_reads_junit_and_explains_missing_modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TOOLS))
    from gpu_check_report import _targets, explain, junit_outcomes

    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite><testcase classname="a.test_x" name="test_ok"/>'
        '<testcase classname="a.test_x" name="test_media"><error message="failed on setup with '
        'ImportError: reading or writing media needs PyAV"/></testcase>'
        '<testcase classname="a.test_y" name="test_bad"><failure message="assert 1 == 2"/></testcase>'
        "</testsuite></testsuites>"
    )
    out = explain(junit_outcomes(xml))
    assert [o["outcome"] for o in out] == ["passed", "error", "failed"]
    assert "PyAV" in out[1]["explained"] and out[2]["explained"] == ""
    bench = {
        "status": "passed",
        "data": {
            "targets": [
                {"name": "fsq_gpu_forward_bandwidth", "line": "target fsq_gpu_forward_bandwidth: 70% met"}
            ]
        },
    }
    lines = _targets({"bench": bench}, dry=False)
    assert lines[0].endswith("met") and all("not measured" in ln for ln in lines[1:]) and len(lines) == 4
