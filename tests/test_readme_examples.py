"""Every package README's Python examples run as written (the API examples are documentation that
cannot silently rot). A fenced ```python block runs when it imports something; blocks without an
import are signatures shown for reading (e.g. Protocol listings). Blocks of one README run in order
in one fresh interpreter, in a temporary directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = sorted(ROOT.glob("packages/*/README.md")) + sorted(ROOT.glob("packages/*/src/avtok/*/*/README.md"))
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def runnable_blocks(readme: Path) -> list[str]:
    blocks = FENCE.findall(readme.read_text())
    return [b for b in blocks if re.search(r"^\s*(import|from)\s+\S+", b, re.MULTILINE)]


@pytest.mark.slow
@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_examples_run(readme: Path, tmp_path: Path) -> None:
    blocks = runnable_blocks(readme)
    if not blocks:
        pytest.skip(f"{readme.relative_to(ROOT)} has no runnable example")
    script = tmp_path / "example.py"
    script.write_text("\n\n".join(blocks))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{readme.relative_to(ROOT)} example failed:\n{done.stderr[-3000:]}"
