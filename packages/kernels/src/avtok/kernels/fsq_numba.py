"""FSQ on CPU with numba: one fused parallel pass per direction, wired in as a torch.autograd.Function.

Forward: per value, ``L - 1`` comparisons against fp32 thresholds (see ``avtok.kernels.fsq``) give the
digit; the code is ``(digit - L//2) / (L//2)`` in fp32 and the digits of a group accumulate into its int32
index — codes and indices in one memory-bound pass, no tanh. Backward: ``dcode/dz = h / (L // 2) * (1 - tanh(z
+ s)^2)`` (the bound's derivative; rounding is straight-through), again one parallel pass, with a
vectorisable float64 ``sech^2`` (see ``_sech2``).

Threading (see ``configure_numba_threading``): numba's ``omp`` layer shares torch's OpenMP runtime,
and launching it raised torch's thread count (1 -> 2 here), so after a single FSQ call every torch op
ran with an extra spinning worker (a 1-thread MLP step: ~1.4 ms -> ~60 ms on the shared 2-core box).
torch's count is restored after the launch and after every kernel call, numba uses at most
``torch.get_num_threads()`` threads, and inputs below ``SERIAL_BELOW`` values run on one thread.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from avtok.kernels.fsq_tables import FSQTables, column_tables

__all__ = [
    "SERIAL_BELOW",
    "configure_numba_threading",
    "fsq_numba",
    "fsq_numba_backward_kernel",
    "fsq_numba_forward_kernel",
    "numba_threads_for",
]


_CHUNK = 256  # rows per parallel task: amortises the scratch row, keeps tasks cache-sized
SERIAL_BELOW = 1 << 15  # values: below this one thread beats waking a worker (measured, see README)


@functools.cache
def configure_numba_threading() -> str:
    """Start numba's threading layer once without changing torch's thread count; returns its name.

    numba's ``omp`` layer binds its OpenMP calls to the libgomp torch already loaded (torch puts its
    runtime in the global symbol scope), so its launch-time ``omp_set_num_threads(NUMBA_NUM_THREADS)``
    overwrote torch's setting: ``torch.get_num_threads()`` went from 1 to 2 and every later torch op ran
    with an extra spinning worker. torch's count is put back right after the launch. The layer itself
    (``NUMBA_THREADING_LAYER``) stays numba's choice: ``omp`` is thread-safe, ``workqueue`` aborts the
    process when two Python threads launch kernels at once (these kernels release the GIL).
    """
    torch_threads = torch.get_num_threads()
    try:
        numba.get_num_threads()  # launches the threading layer
    finally:
        _restore_torch_threads(torch_threads)
    return numba.threading_layer()


def _restore_torch_threads(count: int) -> None:
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def numba_threads_for(num_values: int) -> int:
    """Threads for one kernel call: 1 below ``SERIAL_BELOW`` values, else at most torch's thread count."""
    if num_values < SERIAL_BELOW:
        return 1
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def _run(kernel, num_values: int, *args) -> None:
    """Call a parallel kernel with ``numba_threads_for`` threads (numba's count is per Python thread)."""
    configure_numba_threading()
    torch_threads = torch.get_num_threads()
    previous = numba.get_num_threads()
    numba.set_num_threads(numba_threads_for(num_values))
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(previous)
        _restore_torch_threads(torch_threads)


@njit(parallel=True, cache=True, nogil=True)
def fsq_numba_forward_kernel(z, thresholds, half_width, basis, num_groups, codes, indices):
    """z (N, C) float32 -> codes (N, C) float32 and indices (N, G) int32, written in place.

    ``thresholds`` (T, C) float32 per column (NaN padding), ``half_width`` (C,) float32, ``basis``
    (d,) int32. The compare loop runs over contiguous columns so LLVM vectorises it.
    """
    n_rows, cols = z.shape
    n_thr = thresholds.shape[0]
    d = basis.shape[0]
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        digits = np.empty(cols, np.int32)  # (C,) scratch, one per task
        for n in range(c * _CHUNK, min(n_rows, (c + 1) * _CHUNK)):
            row = z[n]
            out = codes[n]
            for col in range(cols):
                digits[col] = 0
            for t in range(n_thr):
                thr = thresholds[t]
                for col in range(cols):
                    digits[col] += row[col] >= thr[col]
            for col in range(cols):
                out[col] = (np.float32(digits[col]) - half_width[col]) / half_width[col]
            for g in range(num_groups):
                index = 0
                for j in range(d):
                    index += digits[g * d + j] * basis[j]
                indices[n, g] = index


@njit(inline="always", cache=True)
def _sech2(y):
    """1 - tanh(y)^2 in float64, as 4e / (1 + e)^2 with e = exp(-2|y|).

    exp comes from a degree-12 Taylor polynomial at u = -2|y| / 128 (|u| <= 0.625, remainder < 4e-13)
    raised to the 128th power by 7 squarings. Pure arithmetic, so LLVM vectorises the loop — numba's
    tanhf/expf are scalar libm calls, ~25x slower here — and, unlike 1 - t*t, it has no cancellation
    near saturation. |y| is clamped at 40 (sech^2 < 1e-34 there).
    """
    u = -min(2.0 * abs(y), 80.0) / 128.0
    e = 1.0 / 479001600.0  # 1/12!
    e = e * u + 1.0 / 39916800.0
    e = e * u + 1.0 / 3628800.0
    e = e * u + 1.0 / 362880.0
    e = e * u + 1.0 / 40320.0
    e = e * u + 1.0 / 5040.0
    e = e * u + 1.0 / 720.0
    e = e * u + 1.0 / 120.0
    e = e * u + 1.0 / 24.0
    e = e * u + 1.0 / 6.0
    e = e * u + 0.5
    e = e * u + 1.0
    e = e * u + 1.0
    for _ in range(7):
        e = e * e
    d = 1.0 + e
    return 4.0 * e / (d * d)


@njit(parallel=True, cache=True, nogil=True)
def fsq_numba_backward_kernel(z, grad_codes, shift, grad_scale, grad_z):
    """grad_z = grad_codes * h/hw * (1 - tanh(z + s)^2); z, grads (N, C), shift/grad_scale (C,) fp32."""
    n_rows, cols = z.shape
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        for n in range(c * _CHUNK, min(n_rows, (c + 1) * _CHUNK)):
            for col in range(cols):
                deriv = _sech2(np.float64(z[n, col]) + np.float64(shift[col]))
                scale = np.float64(grad_codes[n, col]) * np.float64(grad_scale[col])
                grad_z[n, col] = np.float32(scale * deriv)


def _empty(shape: tuple[int, ...], dtype: type) -> Tensor:
    # numpy's allocator asks for transparent huge pages: first-touch page faults on a fresh 50 MB
    # output cost ~5x less than with torch.empty on this machine kind.
    return torch.from_numpy(np.empty(shape, dtype=dtype))


class _FSQNumbaFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z32: Tensor, tables: FSQTables, num_groups: int):  # z32 (N, G*d) fp32 contiguous
        col = column_tables(tables, num_groups)
        codes = _empty(tuple(z32.shape), np.float32)
        indices = _empty((z32.shape[0], num_groups), np.int32)
        if z32.shape[0]:
            _run(fsq_numba_forward_kernel, z32.numel(), z32.detach().numpy(), col.thresholds,
                 col.half_width, col.basis, num_groups, codes.numpy(), indices.numpy())
        ctx.save_for_backward(z32)
        ctx.columns = col
        ctx.mark_non_differentiable(indices)
        return codes, indices

    @staticmethod
    def backward(ctx, grad_codes: Tensor, _grad_indices: Tensor):
        (z32,) = ctx.saved_tensors
        grad = grad_codes.float().contiguous()
        grad_z = _empty(tuple(z32.shape), np.float32)
        if z32.shape[0]:
            col = ctx.columns
            _run(fsq_numba_backward_kernel, z32.numel(), z32.detach().numpy(), grad.numpy(), col.shift,
                 col.grad_scale, grad_z.numpy())
        return grad_z, None, None


def fsq_numba(z: Tensor, tables: FSQTables, num_groups: int) -> tuple[Tensor, Tensor]:
    """CPU FSQ of ``z`` (..., G*d) any float dtype -> (codes in z.dtype, indices int32 (..., G))."""
    if z.device.type != "cpu":
        raise ValueError(f"fsq backend='numba' (CPU kernels) got a {z.device} tensor; use the CUDA path")
    lead = z.shape[:-1]
    z32 = z.float().reshape(-1, z.shape[-1]).contiguous()  # (N, G*d); no copy for contiguous fp32
    codes, indices = _FSQNumbaFunction.apply(z32, tables, num_groups)
    return codes.to(z.dtype).reshape(z.shape), indices.reshape(*lead, num_groups)
