"""The numba FSQ backend must not change how later torch ops run (regression for a 10-40x slowdown).

numba's ``omp`` threading layer shares torch's OpenMP runtime; its launch used to raise torch's thread
count (``torch.get_num_threads()`` 1 -> 2), so every later torch op in the process ran with an extra
spinning worker. These checks run in fresh subprocesses (the threading layer launches once per process)
and assert thread counts and CPU accounting, not wall-clock times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

numba = pytest.importorskip("numba")
from avtok.kernels import fsq  # noqa: E402
from avtok.kernels.fsq_numba import SERIAL_BELOW, numba_threads_for  # noqa: E402

_THREAD_COUNTS = textwrap.dedent("""
    import json, torch
    from avtok.kernels import fsq
    import numba
    seen = []
    for threads in (1, 2):  # the layer launches while torch has 1 thread; later calls at 2
        torch.set_num_threads(threads)
        for rows in (4, 4096):  # below and above the serial crossover
            z = torch.randn(rows, 48, requires_grad=True)
            fsq(z, (4,) * 6, num_groups=8, backend="numba").codes.sum().backward()
            seen.append(torch.get_num_threads())
    print(json.dumps({"seen": seen, "layer": numba.threading_layer()}))
""")

_CPU_SPLIT = textwrap.dedent("""
    import json, os, time, torch
    torch.set_num_threads(1)
    from avtok.kernels import fsq
    main = str(os.getpid())

    def ticks():  # utime + stime per thread, from /proc
        out = {}
        for tid in os.listdir("/proc/self/task"):
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            out[tid] = int(fields[11]) + int(fields[12])
        return out

    z = torch.randn(4096, 48, requires_grad=True)
    fsq(z, (4,) * 6, num_groups=8, backend="numba").codes.sum().backward()
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256))
    x = torch.randn(64, 256)
    before, t0 = ticks(), time.process_time()
    while time.process_time() - t0 < 0.6:
        model(x).square().mean().backward()
    after = ticks()
    others = sum(v - before.get(t, 0) for t, v in after.items() if t != main)
    print(json.dumps({"main": after[main] - before[main], "others": others}))
""")


def _run(script: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True,
                         text=True, env=env, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_numba_fsq_keeps_torch_thread_count():
    result = _run(_THREAD_COUNTS)  # before the fix: [2, 2, 2, 2]
    assert result["seen"] == [1, 1, 2, 2], result
    assert result["layer"] in ("omp", "tbb", "workqueue")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc per-thread accounting")
def test_no_spinning_workers_during_later_torch_ops():
    # Before the fix the extra OpenMP worker burned as much CPU as the main thread (ratio ~1.0).
    result = _run(_CPU_SPLIT)
    assert result["main"] > 0, result
    assert result["others"] <= 0.25 * result["main"] + 2, result


def test_thread_choice_follows_torch_and_size():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert numba_threads_for(SERIAL_BELOW * 4) == 1
        torch.set_num_threads(2)
        assert numba_threads_for(SERIAL_BELOW - 1) == 1
        assert numba_threads_for(SERIAL_BELOW) == min(2, numba.config.NUMBA_NUM_THREADS)
        z = torch.randn(SERIAL_BELOW // 48 + 8, 48, requires_grad=True)
        fsq(z, (4,) * 6, num_groups=8, backend="numba").codes.sum().backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
