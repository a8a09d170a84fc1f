"""Symmetric rank-k products for the Gram loss through BLAS/cuBLAS ``syrk`` (half the FLOPs of gemm).

``syrk`` computes one triangle of ``alpha * A A^T + beta * C``; two calls (``alpha = 1`` for ``a``,
then ``alpha = -1, beta = 1`` for ``b``) give the upper triangle of ``D = Fa Fa^T - Fb Fb^T``, which is
then mirrored. CPU: scipy's ``ssyrk``/``dsyrk`` on numpy views of the (contiguous) torch tensors.
GPU: ``cupy.cublas.syrk`` on the CUDA tensors (zero-copy through ``__cuda_array_interface__``).
"""

from __future__ import annotations

import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from avtok.kernels.backends import import_optional

__all__ = ["syrk_difference_blas", "syrk_difference_cupy"]


def _mirror_upper(d: Tensor) -> Tensor:
    """(B, C, C) with a valid upper triangle -> full symmetric matrix."""
    upper = torch.triu(d)
    return upper + torch.triu(d, diagonal=1).transpose(1, 2)


@functools.cache
def _scipy_syrk():
    blas = import_optional("scipy.linalg.blas", purpose="gram_loss backend='blas'")
    return {np.dtype(np.float32): blas.ssyrk, np.dtype(np.float64): blas.dsyrk}


_SMALL_WORK = 1 << 22  # C*C*N below this: run inline, thread hand-offs would cost more than the math


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()  # scans the loaded libraries once, not on every call


def _limit_blas_threads():
    """One BLAS thread per call while we parallelise over the batch ourselves (else a no-op)."""
    controller = _blas_controller()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="avtok-syrk")


def syrk_difference_blas(fa: Tensor, fb: Tensor) -> Tensor:
    """CPU ``fa fa^T - fb fb^T`` (B, C, C) via BLAS syrk; fa, fb (B, C, N) contiguous fp32/fp64.

    The batch items run on ``torch.get_num_threads()`` Python threads (scipy's BLAS wrappers release
    the GIL), each with a single-threaded BLAS: OpenBLAS's own threading spins against torch's OpenMP
    pool on a shared CPU and was 3-10x slower on the 2-core dev box.
    """
    syrk = _scipy_syrk()[np.dtype(fa.numpy().dtype)]
    a_np, b_np = fa.numpy(), fb.numpy()
    out = np.empty((fa.shape[0], fa.shape[1], fa.shape[1]), dtype=a_np.dtype)  # (B, C, C)

    def one(i: int) -> None:
        # a_np[i].T is an F-ordered (N, C) view: trans=1 gives A^T A = F F^T without a copy.
        c = syrk(1.0, a_np[i].T, trans=1, lower=0)
        c = syrk(-1.0, b_np[i].T, beta=1.0, c=c, trans=1, lower=0, overwrite_c=1)
        out[i] = c  # upper triangle valid (Fortran-ordered result, same values)

    batch, channels, length = a_np.shape
    workers = max(1, min(torch.get_num_threads(), batch))
    if workers == 1 or channels * channels * length < _SMALL_WORK:
        for i in range(batch):
            one(i)
    else:
        with _limit_blas_threads():
            list(_pool(workers).map(one, range(batch)))
    return _mirror_upper(torch.from_numpy(out))


def syrk_difference_cupy(fa: Tensor, fb: Tensor) -> Tensor:
    """GPU ``fa fa^T - fb fb^T`` (B, C, C) via cuBLAS syrk; fa, fb (B, C, N) contiguous CUDA tensors.

    ``out`` is passed as a C-contiguous view of the torch result so CuPy neither allocates nor copies
    ``a`` to Fortran order; with ``beta=0`` the unwritten lower triangle is never read (``_mirror_upper``
    keeps only the upper one).
    """
    cp = import_optional("cupy", purpose="gram_loss backend='cupy'")
    b, c, _ = fa.shape
    out = torch.empty((b, c, c), dtype=fa.dtype, device=fa.device)
    with cp.cuda.ExternalStream(torch.cuda.current_stream(fa.device).cuda_stream):
        a_cp, b_cp, o_cp = cp.asarray(fa), cp.asarray(fb), cp.asarray(out)
        for i in range(b):
            cp.cublas.syrk("N", a_cp[i], out=o_cp[i], alpha=1.0, beta=0.0, lower=False)  # A A^T
            cp.cublas.syrk("N", b_cp[i], out=o_cp[i], alpha=-1.0, beta=1.0, lower=False)
    return _mirror_upper(out)
