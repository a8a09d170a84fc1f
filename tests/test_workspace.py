"""Workspace-wide contracts: layout, namespace packaging, versions and the dependency direction.

These are the rules of DESIGN.md that no single package's tests can see.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {  # directory -> (distribution, module)
    "media-io": ("avtok-media-io", "media_io"),
    "kernels": ("avtok-kernels", "kernels"),
    "eval": ("avtok-eval", "eval"),
    "train": ("avtok-train", "train"),
    "tokenizer": ("avtok-tokenizer", "tokenizer"),
    "generator": ("avtok-generator", "generator"),
}
# DESIGN.md: media-io, kernels -> eval -> train -> tokenizer -> generator. Each module may import only these.
ALLOWED_SIBLINGS = {
    "media_io": set(),
    "kernels": set(),
    "eval": {"media_io", "kernels"},
    "train": {"media_io", "kernels", "eval"},
    "tokenizer": {"media_io", "kernels", "eval", "train"},
    "generator": {"media_io", "kernels", "eval", "train", "tokenizer"},
}


def _version(directory: str) -> Version:
    module = PACKAGES[directory][1]
    about = (ROOT / "packages" / directory / "src" / "avtok" / module / "__about__.py").read_text()
    return Version(re.search(r'__version__ = "([^"]+)"', about).group(1))


def _pyproject(directory: str) -> dict:
    return tomllib.loads((ROOT / "packages" / directory / "pyproject.toml").read_text())


@pytest.mark.parametrize("directory", PACKAGES)
def test_package_layout(directory: str) -> None:
    dist, module = PACKAGES[directory]
    root = ROOT / "packages" / directory
    assert _pyproject(directory)["project"]["name"] == dist
    assert not (root / "src" / "avtok" / "__init__.py").exists(), "avtok is a PEP 420 namespace"
    assert (root / "README.md").read_text().strip(), f"{dist} needs a README"
    assert (root / "tests").is_dir()
    assert importlib.import_module(f"avtok.{module}").__version__ == str(_version(directory))


@pytest.mark.parametrize("directory", PACKAGES)
def test_sibling_requirements_are_ranges_that_admit_the_workspace(directory: str) -> None:
    versions = {dist: _version(d) for d, (dist, _) in PACKAGES.items()}
    for line in _pyproject(directory)["project"]["dependencies"]:
        req = Requirement(line)
        if req.name in versions:
            assert len(req.specifier) >= 2, f"{line}: publish a range (lower and upper bound)"
            assert versions[req.name] in req.specifier, f"{line} excludes the workspace's {versions[req.name]}"


def _imported_siblings(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {n.split(".")[1] for n in names if n.startswith("avtok.") and n.count(".") >= 1}
    return found


@pytest.mark.parametrize("directory", PACKAGES)
def test_dependency_direction(directory: str) -> None:
    dist, module = PACKAGES[directory]
    src = ROOT / "packages" / directory / "src"
    declared = {Requirement(r).name for r in _pyproject(directory)["project"]["dependencies"]}
    for path in src.rglob("*.py"):
        siblings = _imported_siblings(path) - {module}
        illegal = siblings - ALLOWED_SIBLINGS[module]
        assert not illegal, f"{path.relative_to(ROOT)} imports {illegal}: against DESIGN.md's direction"
        undeclared = {s for s in siblings if f"avtok-{s.replace('_', '-')}" not in declared}
        assert not undeclared, f"{path.relative_to(ROOT)} imports {undeclared} without declaring them"


def test_media_io_imports_alone() -> None:
    """`pip install packages/media-io` must work without its siblings: importing it loads no sibling."""
    code = (
        "import sys, avtok.media_io; "
        "print(sorted(m for m in sys.modules if m.startswith('avtok.') and not m.startswith('avtok.media_io')))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the workspace modules it imports (any import statement, also inside functions), from the
    sources with ast. ``from pkg import name`` points at ``pkg.name`` when that is a module, else ``pkg``."""
    srcs = [ROOT / "packages" / d / "src" for d in PACKAGES]
    files = {_module_name(p, src): p for src in srcs for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for alias in node.names:
                    edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


def test_module_import_graph_is_acyclic_and_follows_the_package_direction() -> None:
    """No import cycle between modules (a package's ``__init__`` re-exporting its modules is an edge like any
    other), and every edge goes along DESIGN.md's direction."""
    graph = _import_graph()
    assert len(graph) > 100, "the graph should cover every module of the workspace"
    for src, targets in graph.items():
        for dst in targets:
            a, b = src.split(".")[1], dst.split(".")[1]
            assert a == b or b in ALLOWED_SIBLINGS[a], f"{src} -> {dst}: against the package direction"
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
