"""FSQ on NVIDIA GPUs with ``numba.cuda`` kernels (same threshold algorithm as the CPU kernels).

``numba.cuda`` here is whatever provides that module: numba 0.68's built-in target, or NVIDIA's
out-of-tree ``numba-cuda`` package (``pip install 'avtok-kernels[cuda]'``), which takes the name over
through an import redirector. The kernels are plain ``@cuda.jit`` functions, so they also run on
numba's CPU simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is imported) on numpy arrays: the
test suite checks them that way on machines without a GPU, and on the real device when one is present.

Forward: one thread per (row, group) — it reads the group's ``d`` values, compares each with the
``L - 1`` fp32 thresholds, writes the codes and the packed index. Backward: one thread per value.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from numba import cuda, float32, int32
from torch import Tensor

from avtok.kernels.fsq_tables import FSQTables, column_tables

__all__ = ["THREADS_PER_BLOCK", "fsq_cuda", "fsq_cuda_backward_kernel", "fsq_cuda_forward_kernel",
           "launch_backward", "launch_forward"]

THREADS_PER_BLOCK = 256


@cuda.jit
def fsq_cuda_forward_kernel(z, thresholds, half_width, basis, num_groups, codes, indices):
    """z (N, C) fp32; thresholds (T, C) fp32; half_width (C,) fp32; basis (d,) int32 -> codes, indices."""
    i = cuda.grid(1)
    n_rows = z.shape[0]
    if i >= n_rows * num_groups:
        return
    n = i // num_groups
    g = i - n * num_groups
    d = basis.shape[0]
    index = int32(0)
    for j in range(d):
        col = g * d + j
        x = z[n, col]
        digit = int32(0)
        for t in range(thresholds.shape[0]):
            if x >= thresholds[t, col]:
                digit += 1
        codes[n, col] = (float32(digit) - half_width[col]) / half_width[col]
        index += digit * basis[j]
    indices[n, g] = index


@cuda.jit
def fsq_cuda_backward_kernel(z, grad_codes, shift, grad_scale, grad_z):
    """grad_z = grad_codes * h/hw * (1 - tanh(z + s)^2), one thread per value of the (N, C) arrays."""
    i = cuda.grid(1)
    cols = z.shape[1]
    if i >= z.shape[0] * cols:
        return
    n = i // cols
    col = i - n * cols
    t = math.tanh(z[n, col] + shift[col])
    grad_z[n, col] = grad_codes[n, col] * grad_scale[col] * (float32(1.0) - t * t)


def _blocks(work: int) -> int:
    return max(1, (work + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)


def launch_forward(z, thresholds, half_width, basis, num_groups: int, codes, indices, stream=0) -> None:
    """Launch the forward kernel on device arrays (or numpy arrays under the simulator)."""
    grid = _blocks(z.shape[0] * num_groups)
    fsq_cuda_forward_kernel[grid, THREADS_PER_BLOCK, stream](
        z, thresholds, half_width, basis, num_groups, codes, indices
    )


def launch_backward(z, grad_codes, shift, grad_scale, grad_z, stream=0) -> None:
    """Launch the backward kernel on device arrays (or numpy arrays under the simulator)."""
    grid = _blocks(z.shape[0] * z.shape[1])
    fsq_cuda_backward_kernel[grid, THREADS_PER_BLOCK, stream](z, grad_codes, shift, grad_scale, grad_z)


@functools.cache  # one small upload per (level set, groups, device), not one per call
def _device_tables(tables: FSQTables, num_groups: int, device: torch.device) -> dict[str, Tensor]:
    col = column_tables(tables, num_groups)
    names = ("thresholds", "half_width", "basis", "shift", "grad_scale")
    return {name: torch.from_numpy(np.asarray(getattr(col, name))).to(device) for name in names}


def _stream(device: torch.device):
    return cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)


class _FSQCudaFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z32: Tensor, tables: FSQTables, num_groups: int):  # z32 (N, C) fp32 on CUDA
        dev = z32.device
        tab = _device_tables(tables, num_groups, dev)
        codes = torch.empty_like(z32)
        indices = torch.empty((z32.shape[0], num_groups), dtype=torch.int32, device=dev)
        if z32.shape[0]:
            arr = cuda.as_cuda_array
            launch_forward(arr(z32.detach()), arr(tab["thresholds"]), arr(tab["half_width"]),
                           arr(tab["basis"]), num_groups, arr(codes), arr(indices), _stream(dev))
        ctx.save_for_backward(z32, tab["shift"], tab["grad_scale"])
        ctx.mark_non_differentiable(indices)
        return codes, indices

    @staticmethod
    def backward(ctx, grad_codes: Tensor, _grad_indices: Tensor):
        z32, shift, grad_scale = ctx.saved_tensors
        grad = grad_codes.float().contiguous()
        grad_z = torch.empty_like(z32)
        if z32.shape[0]:
            arr = cuda.as_cuda_array
            launch_backward(arr(z32.detach()), arr(grad), arr(shift), arr(grad_scale), arr(grad_z),
                            _stream(z32.device))
        return grad_z, None, None


def fsq_cuda(z: Tensor, tables: FSQTables, num_groups: int) -> tuple[Tensor, Tensor]:
    """GPU FSQ of a CUDA tensor ``z`` (..., G*d) -> (codes in z.dtype, indices int32 (..., G))."""
    if z.device.type != "cuda":
        raise ValueError(f"fsq numba.cuda kernels need a CUDA tensor, got {z.device}; use backend='numba' "
                         "on CPU tensors (CPU kernels) or move z to the GPU")
    lead = z.shape[:-1]
    z32 = z.float().reshape(-1, z.shape[-1]).contiguous()  # (N, C)
    codes, indices = _FSQCudaFunction.apply(z32, tables, num_groups)
    return codes.to(z.dtype).reshape(z.shape), indices.reshape(*lead, num_groups)
