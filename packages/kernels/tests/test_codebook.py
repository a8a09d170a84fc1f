"""CodebookStats: counts against numpy, closed-form entropy/perplexity, DDP all-reduce with gloo."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avtok.kernels import CodebookStats

WORKER = Path(__file__).with_name("ddp_codebook_worker.py")


def test_counts_match_numpy_bincount_over_batches():
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 10, (4, 6, 2), generator=gen, dtype=torch.int32) for _ in range(3)]
    stats = CodebookStats(10, num_groups=2)
    for b in batches:
        stats.update(b)
    allidx = torch.cat([b.reshape(-1, 2) for b in batches]).numpy()
    for g in range(2):
        assert stats.counts[g].tolist() == np.bincount(allidx[:, g], minlength=10).tolist()
    assert stats.counts.dtype == torch.int64 and stats.total().tolist() == [72, 72]


def test_uniform_and_collapsed_closed_forms():
    stats = CodebookStats(8, num_groups=2)
    stats.update(torch.stack([torch.arange(8).repeat(3), torch.full((24,), 5)], dim=-1))  # (24, 2)
    torch.testing.assert_close(stats.usage(), torch.tensor([1.0, 1 / 8], dtype=torch.float64))
    torch.testing.assert_close(stats.entropy(), torch.tensor([3.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(stats.perplexity(), torch.tensor([8.0, 1.0], dtype=torch.float64))
    stats.reset()
    stats.update(torch.tensor([[0], [0], [0], [1]]).expand(4, 2))
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    torch.testing.assert_close(stats.entropy(base=math.e), torch.full((2,), h, dtype=torch.float64))
    torch.testing.assert_close(stats.perplexity(), torch.full((2,), math.exp(h), dtype=torch.float64))


def test_empty_stats_and_single_process_all_reduce_is_noop():
    stats = CodebookStats(4)
    assert stats.entropy().tolist() == [0.0] and stats.usage().tolist() == [0.0]
    stats.update(torch.tensor([[1], [2]]))
    stats.all_reduce()  # no process group: nothing changes
    assert stats.counts.tolist() == [[0, 1, 1, 0]]


def test_errors_name_the_input():
    stats = CodebookStats(4, num_groups=2)
    with pytest.raises(ValueError, match="num_groups=2"):
        stats.update(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        stats.update(torch.tensor([[0, 4]]))
    with pytest.raises(TypeError, match="integers"):
        stats.update(torch.zeros(3, 2))


def test_all_reduce_across_two_gloo_ranks(tmp_path):
    out = tmp_path / "stats.pt"
    proc = subprocess.run([sys.executable, str(WORKER), str(out)], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    sys.path.insert(0, str(WORKER.parent))
    try:
        from ddp_codebook_worker import rank_indices
    finally:
        sys.path.pop(0)
    expected = CodebookStats(64, num_groups=3)
    for rank in range(2):
        expected.update(rank_indices(rank))
        expected.update(rank_indices(rank)[:5])
    saved = torch.load(out, weights_only=True)
    assert torch.equal(saved["counts"], expected.counts)
    torch.testing.assert_close(saved["ppl"], expected.perplexity())
    assert saved["usage"][0] > 16 / 64  # rank 1's codes beyond 16 made it into rank 0's table
