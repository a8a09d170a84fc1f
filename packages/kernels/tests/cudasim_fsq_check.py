"""Run the numba.cuda FSQ kernels on numba's CPU simulator and compare them with the reference.

Invoked by test_fsq_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (the variable must be set before
numba is first imported). Exits non-zero with a message on any mismatch.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from avtok.kernels.fsq import fsq_reference, fsq_tables
from avtok.kernels.fsq_tables import column_tables


def check(levels: tuple[int, ...], groups: int, rows: int) -> None:
    from avtok.kernels import fsq_cuda

    tables = fsq_tables(levels)
    col = column_tables(tables, groups)
    gen = torch.Generator().manual_seed(len(levels))
    z = torch.randn(rows, groups * len(levels), generator=gen) * 1.5
    thr = np.where(np.isfinite(tables.thresholds), tables.thresholds, 0).astype(np.float32)
    edges = np.concatenate([thr.T, np.nextafter(thr, np.float32(-np.inf)).T])  # rounding boundaries
    z[: edges.shape[0]] = torch.from_numpy(np.tile(edges, (1, groups)))
    z[-1, :2] = torch.tensor([float("inf"), float("-inf")])
    z_np = z.numpy().copy()
    codes = np.empty_like(z_np)
    indices = np.empty((rows, groups), np.int32)
    fsq_cuda.launch_forward(z_np, col.thresholds, col.half_width, col.basis, groups, codes, indices)
    z_ref = z.clone().requires_grad_()
    ref = fsq_reference(z_ref, levels, num_groups=groups)
    if not np.array_equal(codes, ref.codes.detach().numpy()) or not np.array_equal(indices, ref.indices):
        sys.exit(f"cudasim forward mismatch for levels={levels}")
    grad = torch.randn(z.shape, generator=gen)
    grad_z = np.empty_like(z_np)
    fsq_cuda.launch_backward(z_np, grad.numpy(), col.shift, col.grad_scale, grad_z)
    (g_ref,) = torch.autograd.grad(ref.codes, z_ref, grad)
    if not np.allclose(grad_z, g_ref.numpy(), rtol=1e-5, atol=1e-6):
        sys.exit(f"cudasim backward mismatch for levels={levels}")


def main() -> None:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        sys.exit("set NUMBA_ENABLE_CUDASIM=1 before running this check")
    for levels, groups in (((8, 5, 5, 5), 2), ((4,) * 6, 2), ((8, 8, 8, 5, 5, 5), 1)):
        check(levels, groups, rows=20)
    print("CUDASIM-OK")


if __name__ == "__main__":
    main()
