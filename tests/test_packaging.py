"""Packaging of every workspace package: imports declared (and declarations imported), torch bounded to what
CI tests, a per-package hatch test matrix whose siblings come from this checkout, and (slow) each wheel built
and installed from local wheels only into a clean venv, where it imports and ``avtok --help`` runs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
# dependency order: a package's siblings are built before it is installed
ORDER = ["media-io", "kernels", "eval", "train", "tokenizer", "generator"]


def _checker():
    """The generic import/declaration checker (packages/eval/tests/test_packaging.py), loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "_avtok_packaging", ROOT / "packages/eval/tests/test_packaging.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _project(name: str) -> dict:
    return tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    """torch / torchaudio versions the workspace env (and so CI) installs."""
    deps = tomllib.loads((ROOT / "hatch.toml").read_text())["envs"]["default"]["dependencies"]
    return {
        r.name: str(r.specifier).removeprefix("==")
        for r in map(Requirement, deps)
        if r.name.startswith("torch")
    }


def test_every_package_is_listed() -> None:
    assert PACKAGES == sorted(ORDER)


@pytest.mark.parametrize("name", PACKAGES)
def test_declares_what_it_imports_and_imports_what_it_declares(name: str) -> None:
    undeclared, unused = _checker().check_declared_imports(ROOT / "packages" / name)
    assert not undeclared, f"packages/{name}: imported but not declared in pyproject.toml: {undeclared}"
    assert not unused, (
        f"packages/{name}: runtime dependencies never imported (drop or make an extra): {unused}"
    )


@pytest.mark.parametrize("name", PACKAGES)
def test_torch_is_bounded_to_the_release_ci_tests(name: str) -> None:
    pins = _pins()
    for req in map(Requirement, _project(name)["dependencies"]):
        if req.name in pins:
            assert any(s.operator == "<" for s in req.specifier), f"packages/{name}: {req} has no upper bound"
            assert req.specifier.contains(pins[req.name]), (
                f"packages/{name}: {req} excludes CI's {pins[req.name]}"
            )


def test_extras_for_examples_and_flash_attention() -> None:
    extras = {name: _project(name).get("optional-dependencies", {}) for name in PACKAGES}
    assert any(Requirement(r).name == "flash-attn" for r in extras["kernels"]["flash"])
    for name in ("media-io", "tokenizer", "generator"):  # the README examples read the bundled real clips
        assert any(Requirement(r).name == "iscc-samples" for r in extras[name]["samples"]), name


@pytest.mark.parametrize("name", PACKAGES)
def test_hatch_test_matrix_takes_siblings_from_the_checkout(name: str) -> None:
    """`cd packages/<name> && hatch run test:run` runs the package's own tests with the pinned torch, and
    every avtok sibling comes from this checkout (an index could serve a stranger's package of that name)."""
    env = tomllib.loads((ROOT / "packages" / name / "hatch.toml").read_text())["envs"]["test"]
    assert "test" in env["features"] and env["scripts"]["run"].startswith("python -m pytest {root}/tests")
    deps = [Requirement(d.replace("{root:parent:uri}", "file:///x")) for d in env.get("dependencies", [])]
    local = {d.name for d in deps if d.url}
    declared = {r.name for r in map(Requirement, _project(name)["dependencies"])}
    pinned = {d.name: str(d.specifier) for d in deps if d.name in _pins()}
    for k, v in _pins().items():  # torch + torchaudio only come as the matching pair CI tests
        assert pinned.get(k) == f"=={v}" or k not in declared, f"packages/{name}/hatch.toml: pin {k}=={v}"
    siblings = {
        r.name for r in map(Requirement, _project(name)["dependencies"]) if r.name.startswith("avtok-")
    }
    assert siblings <= local, (
        f"packages/{name}/hatch.toml: siblings {siblings - local} would come from an index"
    )


def _shadow_site(tmp: Path) -> Path:
    """The running env's site-packages minus every avtok distribution (symlinks): the clean venv sees the
    already-installed third-party wheels (torch, …) through it, so nothing big is downloaded, but no avtok."""
    site = Path(sysconfig.get_paths()["purelib"])
    shadow = tmp / "shadow-site"
    shadow.mkdir()
    for entry in site.iterdir():
        low = entry.name.lower()
        if "avtok" in low or low.endswith(".pth"):
            continue
        (shadow / entry.name).symlink_to(entry)
    return shadow


@pytest.mark.slow
def test_wheels_install_from_local_wheels_into_a_clean_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    for name in ORDER:  # hatchling from the workspace env; --no-deps: only this package's wheel
        subprocess.run(
            [
                *pip,
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(wheels),
                str(ROOT / "packages" / name),
            ],
            check=True,
        )
    assert len(list(wheels.glob("avtok_*.whl"))) == len(ORDER)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "third_party.pth").write_text(str(_shadow_site(tmp_path)) + "\n")
    target = [*pip, "--python", str(py), "install", "--no-index", "--find-links", str(wheels)]
    for name in ORDER:  # each resolves alone: its siblings from the local wheels, nothing from an index
        done = subprocess.run([*target, "--dry-run", f"avtok-{name}"], capture_output=True, text=True)
        assert done.returncode == 0, f"avtok-{name} does not install alone: {done.stderr[-2000:]}"
    subprocess.run([*target, "-q", "avtok-generator"], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AVTOK_FIXTURES")}
    code = (
        "import avtok.media_io, avtok.kernels, avtok.eval, avtok.train, avtok.tokenizer, avtok.generator, "
        "sys; print(avtok.generator.__file__)"
    )
    where = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip().startswith(purelib), where.stdout  # the installed wheel, not the checkout
    for command, word in (
        ("avtok", "demo"),
        ("avtok-tokenizer", "train"),
        ("avtok-generator", "sample"),
        ("avtok-eval", "recon"),
    ):
        shown = subprocess.run(
            [venv / "bin" / command, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert shown.returncode == 0 and word in shown.stdout, (command, shown.stderr[-2000:])
