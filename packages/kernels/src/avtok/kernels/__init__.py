"""avtok.kernels: FSQ, codebook statistics, Gram loss, attention dispatch and N-D RoPE.

Each op has one public function with ``backend="auto" | "torch" | ...``; ``"torch"`` is the plain-torch
reference that the tests use as the oracle. Optional backends (numba.cuda, CuPy, flash-attn, scipy BLAS)
are imported only when selected.
"""

from avtok.kernels.__about__ import __version__
from avtok.kernels.attention import attention, attention_reference, build_attention_mask, segment_ids
from avtok.kernels.backends import BACKEND_ENV_VAR, BackendUnavailableError, available_backends
from avtok.kernels.codebook import CodebookStats
from avtok.kernels.fsq import (
    FSQ,
    FSQOutput,
    codes_to_indices,
    fsq,
    fsq_reference,
    fsq_tables,
    indices_to_codes,
)
from avtok.kernels.gram import gram_loss, gram_loss_reference, gram_matrix
from avtok.kernels.rope import RopeND, rope_frequencies, rope_nd

__all__ = [
    "BACKEND_ENV_VAR",
    "FSQ",
    "BackendUnavailableError",
    "CodebookStats",
    "FSQOutput",
    "RopeND",
    "__version__",
    "attention",
    "attention_reference",
    "available_backends",
    "build_attention_mask",
    "codes_to_indices",
    "fsq",
    "fsq_reference",
    "fsq_tables",
    "gram_loss",
    "gram_loss_reference",
    "gram_matrix",
    "indices_to_codes",
    "rope_frequencies",
    "rope_nd",
    "segment_ids",
]
