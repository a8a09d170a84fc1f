"""FSQ constants shared by the reference and every backend: per-dimension tables of one level set and
their per-column tiling for the fused kernels. Below ``fsq`` and its backends, so none of them import
each other for data (see ``fsq.py`` for the maths)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FSQ_EPS", "ColumnTables", "FSQTables", "check_levels", "column_tables", "fsq_tables"]

FSQ_EPS = 1e-3


@dataclass(frozen=True, kw_only=True, eq=False)  # identity hash: one cached instance per level set
class FSQTables:
    """Per-dimension constants of one level set (numpy, shape (d,) or (d, Lmax - 1))."""

    levels: tuple[int, ...]
    half_l: np.ndarray  # (d,) float64
    offset: np.ndarray  # (d,) float64
    shift: np.ndarray  # (d,) float64
    half_width: np.ndarray  # (d,) int64, L // 2
    basis: np.ndarray  # (d,) int64, mixed-radix place values
    thresholds: np.ndarray  # (d, Lmax-1) float32, rounded up to fp32; NaN padding (x >= NaN is False)
    num_thresholds: np.ndarray  # (d,) int32, L - 1
    code_table: np.ndarray  # (d, Lmax) float32, code of each digit
    grad_scale: np.ndarray  # (d,) float32, h / (L // 2)
    shift32: np.ndarray  # (d,) float32

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        return int(np.prod(self.levels))


def check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(level) for level in levels)
    if not out or any(level < 2 for level in out):
        raise ValueError(f"fsq: levels={list(levels)} must be a non-empty list of ints >= 2, e.g. [4]*6")
    if int(np.prod(out, dtype=np.float64)) >= 2**31:
        raise ValueError(f"fsq: levels={list(out)} give {int(np.prod(out))} codes per group; the int32 "
                         "indices hold < 2**31 — split the dims into more groups (num_groups)")
    return out


def _round_up_fp32(values: np.ndarray) -> np.ndarray:
    """Smallest fp32 >= each float64 value (so ``x32 >= result`` iff ``x32 > value``)."""
    down = values.astype(np.float32)
    return np.where(down.astype(np.float64) <= values, np.nextafter(down, np.float32(np.inf)), down)


@functools.cache
def fsq_tables(levels: tuple[int, ...]) -> FSQTables:
    """Constants for one level set (cached; float64 maths, fp32 thresholds for the fast kernels)."""
    levels = check_levels(levels)
    lv = np.asarray(levels, dtype=np.float64)
    half_l = (lv - 1) * (1 + FSQ_EPS) / 2
    offset = np.where(np.asarray(levels) % 2 == 0, 0.5, 0.0)
    shift = np.arctanh(offset / half_l)
    half_width = np.asarray(levels, dtype=np.int64) // 2
    basis = np.cumprod([1, *levels[:-1]]).astype(np.int64)
    lmax = max(levels)
    thresholds = np.full((len(levels), lmax - 1), np.nan, dtype=np.float32)  # NaN: +inf stays in range
    code_table = np.zeros((len(levels), lmax), dtype=np.float32)
    for j, level in enumerate(levels):
        q = np.arange(level - 1) - half_width[j]  # lower side of each rounding boundary
        exact = np.arctanh((q + 0.5 + offset[j]) / half_l[j]) - shift[j]
        thresholds[j, : level - 1] = _round_up_fp32(exact)
        # fp32 division, exactly what the kernels compute: (digit - hw) / hw
        digits = (np.arange(level) - half_width[j]).astype(np.float32)
        code_table[j, :level] = digits / np.float32(half_width[j])
    return FSQTables(
        levels=levels, half_l=half_l, offset=offset, shift=shift, half_width=half_width, basis=basis,
        thresholds=thresholds, num_thresholds=np.asarray(levels, dtype=np.int32) - 1,
        code_table=code_table, grad_scale=(half_l / half_width).astype(np.float32),
        shift32=shift.astype(np.float32),
    )


@dataclass(frozen=True, kw_only=True)
class ColumnTables:
    thresholds: np.ndarray  # (T, C) float32, NaN padding
    half_width: np.ndarray  # (C,) float32
    basis: np.ndarray  # (d,) int32
    shift: np.ndarray  # (C,) float32
    grad_scale: np.ndarray  # (C,) float32


@functools.cache
def column_tables(tables: FSQTables, num_groups: int) -> ColumnTables:
    """Per-dim constants tiled over the groups, so the kernels index by column without a modulo."""
    return ColumnTables(
        thresholds=np.ascontiguousarray(np.tile(tables.thresholds.T, (1, num_groups))),
        half_width=np.tile(tables.half_width.astype(np.float32), num_groups),
        basis=tables.basis.astype(np.int32),
        shift=np.tile(tables.shift32, num_groups),
        grad_scale=np.tile(tables.grad_scale, num_groups),
    )
