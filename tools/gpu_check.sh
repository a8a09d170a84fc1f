#!/usr/bin/env bash
# The GPU check on the lent GPU machine (docs/evidence/gpu.md says how to call it):
# install the carried wheels (.whl/, built here by `python tools/gpu_check.py --build-wheels .whl`) into
# /tmp/site, put packages/*/src on PYTHONPATH (nothing of the workspace is pip-installed), then run
# tools/gpu_check.py with the given arguments. The summary lands in $OUT (default ./gpu_check_out).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 2
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
SRC=$(ls -d "$PWD"/packages/*/src | paste -sd:)
export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
exec "$PY" tools/gpu_check.py "$@"
