"""numba.cuda FSQ kernels: on numba's CPU simulator everywhere, on the real device when present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = Path(__file__).with_name("cudasim_fsq_check.py")


def test_numba_cuda_kernels_match_reference_on_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, str(CHECK)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert "CUDASIM-OK" in proc.stdout


def test_simulator_check_detects_a_wrong_kernel(tmp_path):
    # The check must be able to fail: patch the kernel's code formula and expect a mismatch.
    source = (Path(__file__).parents[1] / "src/avtok/kernels/fsq_cuda.py").read_text()
    broken = source.replace("(float32(digit) - half_width[col]) / half_width[col]",
                            "(float32(digit) - half_width[col]) * half_width[col]")
    assert broken != source
    pkg = tmp_path / "broken"
    pkg.mkdir()
    (pkg / "fsq_cuda.py").write_text(broken)
    shim = tmp_path / "run.py"
    shim.write_text(
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('avtok.kernels.fsq_cuda', r'{pkg / 'fsq_cuda.py'}')\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['avtok.kernels.fsq_cuda'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        f"sys.argv = [r'{CHECK}']\n"
        f"exec(compile(open(r'{CHECK}').read(), r'{CHECK}', 'exec'), {{'__name__': '__main__'}})\n"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, str(shim)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "forward mismatch" in proc.stderr


@pytest.mark.gpu
def test_numba_cuda_on_device():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from avtok.kernels import fsq, fsq_reference

    z = (torch.randn(1000, 48, device="cuda") * 2).requires_grad_()
    out = fsq(z, (4,) * 6, num_groups=8, backend="numba")
    ref = fsq_reference(z, (4,) * 6, num_groups=8)
    assert torch.equal(out.indices, ref.indices) and torch.equal(out.codes, ref.codes)
