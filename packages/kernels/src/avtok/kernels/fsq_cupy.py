"""FSQ on NVIDIA GPUs with CuPy RawKernels (optional backend, ``backend="cupy"``).

The same threshold algorithm as ``fsq_numba`` / ``fsq_cuda``, written in CUDA C and compiled by NVRTC on
first use. CuPy imports without a GPU but fails on first use, so this module is imported only when the
backend is selected for a CUDA tensor; its tests run only where a CUDA device is present.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from avtok.kernels.backends import import_optional
from avtok.kernels.fsq_tables import FSQTables, column_tables

__all__ = ["fsq_cupy"]

_THREADS = 256
_SOURCE = r"""
extern "C" __global__ void fsq_forward(
    const float* z, const float* thr, const float* half_width, const int* basis,
    float* codes, int* indices, long long n_rows, int cols, int n_thr, int d, int groups) {
  long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
  if (i >= n_rows * groups) return;
  long long n = i / groups;
  int g = (int)(i - n * groups);
  int index = 0;
  for (int j = 0; j < d; ++j) {
    int col = g * d + j;
    float x = z[n * cols + col];
    int digit = 0;
    for (int t = 0; t < n_thr; ++t) digit += x >= thr[t * cols + col];
    codes[n * cols + col] = ((float)digit - half_width[col]) / half_width[col];
    index += digit * basis[j];
  }
  indices[n * groups + g] = index;
}

extern "C" __global__ void fsq_backward(
    const float* z, const float* grad, const float* shift, const float* scale, float* grad_z,
    long long total, int cols) {
  long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
  if (i >= total) return;
  int col = (int)(i % cols);
  float t = tanhf(z[i] + shift[col]);
  grad_z[i] = grad[i] * scale[col] * (1.0f - t * t);
}
"""


@functools.cache
def _module():
    cp = import_optional("cupy", purpose="fsq backend='cupy'")
    return cp, cp.RawModule(code=_SOURCE)


@functools.cache
def _device_tables(tables: FSQTables, num_groups: int, device: torch.device) -> dict[str, Tensor]:
    col = column_tables(tables, num_groups)
    names = ("thresholds", "half_width", "basis", "shift", "grad_scale")
    return {name: torch.from_numpy(np.asarray(getattr(col, name))).to(device) for name in names}


def _grid(work: int) -> tuple[int]:
    return (max(1, (work + _THREADS - 1) // _THREADS),)


class _FSQCupyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z32: Tensor, tables: FSQTables, num_groups: int):  # z32 (N, C) fp32 on CUDA
        cp, module = _module()
        tab = _device_tables(tables, num_groups, z32.device)
        n_rows, cols = z32.shape
        codes = torch.empty_like(z32)
        indices = torch.empty((n_rows, num_groups), dtype=torch.int32, device=z32.device)
        if n_rows:
            args = [cp.asarray(t) for t in (z32.detach(), tab["thresholds"], tab["half_width"],
                                            tab["basis"], codes, indices)]
            scalars = (np.int64(n_rows), np.int32(cols), np.int32(tab["thresholds"].shape[0]),
                       np.int32(tables.dim), np.int32(num_groups))
            with cp.cuda.ExternalStream(torch.cuda.current_stream(z32.device).cuda_stream):
                module.get_function("fsq_forward")(_grid(n_rows * num_groups), (_THREADS,), (*args, *scalars))
        ctx.save_for_backward(z32, tab["shift"], tab["grad_scale"])
        ctx.mark_non_differentiable(indices)
        return codes, indices

    @staticmethod
    def backward(ctx, grad_codes: Tensor, _grad_indices: Tensor):
        cp, module = _module()
        z32, shift, grad_scale = ctx.saved_tensors
        grad = grad_codes.float().contiguous()
        grad_z = torch.empty_like(z32)
        if z32.numel():
            args = [cp.asarray(t) for t in (z32.detach(), grad, shift, grad_scale, grad_z)]
            with cp.cuda.ExternalStream(torch.cuda.current_stream(z32.device).cuda_stream):
                module.get_function("fsq_backward")(
                    _grid(z32.numel()), (_THREADS,), (*args, np.int64(z32.numel()), np.int32(z32.shape[1]))
                )
        return grad_z, None, None


def fsq_cupy(z: Tensor, tables: FSQTables, num_groups: int) -> tuple[Tensor, Tensor]:
    """GPU FSQ with CuPy kernels -> (codes in z.dtype, indices int32 (..., G))."""
    if z.device.type != "cuda":
        raise ValueError(f"fsq backend='cupy' needs a CUDA tensor, got {z.device}; "
                         "use backend='numba' on CPU")
    lead = z.shape[:-1]
    z32 = z.float().reshape(-1, z.shape[-1]).contiguous()  # (N, C)
    codes, indices = _FSQCupyFunction.apply(z32, tables, num_groups)
    return codes.to(z.dtype).reshape(z.shape), indices.reshape(*lead, num_groups)
