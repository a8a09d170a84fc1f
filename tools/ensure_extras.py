"""Install the workspace's no-deps extras into the current environment, once.

aisfx (the FAD embedding network of avtok-eval; its weights ship inside the wheel) pins numpy 1.23 and
librosa 0.9, which avtok does not need (it loads only the checkpoint), so it cannot be an ordinary
dependency: pip would downgrade numpy. Hatch runs post-install commands only for installed projects,
and the workspace root is not one, so the workspace scripts call this first. It is a no-op when the
packages are present.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

NO_DEPS = {"aisfx": "aisfx==0.1.2"}


def main() -> int:
    missing = [req for module, req in NO_DEPS.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return 0
    print(f"[ensure_extras] pip install --no-deps {' '.join(missing)}", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", *missing]
    return subprocess.call(cmd)


if __name__ == "__main__":
    raise SystemExit(main())
