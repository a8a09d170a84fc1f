import json
import math
import subprocess
import sys

import pytest
import torch

from avtok.eval.tokens import ThroughputMeter, token_stats


def test_uniform_use_of_half_the_codebook():
    idx = torch.arange(8).repeat(10)  # 80 tokens spread evenly over 8 of 16 codes
    stats = token_stats([idx[:30], idx[30:]], codebook_size=16)
    assert stats.usage == [0.5] and stats.num_tokens == 80
    assert stats.perplexity[0] == pytest.approx(8.0) and stats.entropy_bits[0] == pytest.approx(3.0)


def test_per_group_entropy():
    g0 = torch.zeros(64, dtype=torch.long)  # collapsed group
    g1 = torch.arange(64) % 4  # four codes evenly
    stats = token_stats([torch.stack([g0, g1], -1)], codebook_size=4, num_groups=2)
    assert stats.entropy_bits == pytest.approx([0.0, 2.0])
    m = stats.as_metrics()
    assert m["codebook_entropy_bits_g1"] == pytest.approx(2.0) and m["codebook_perplexity"] == pytest.approx(2.5)
    assert m["codebook_usage"] == pytest.approx((0.25 + 1.0) / 2)


def test_token_errors():
    with pytest.raises(TypeError, match="integer"):
        token_stats([torch.rand(4)], codebook_size=4)
    with pytest.raises(ValueError, match="no tokens"):
        token_stats([], codebook_size=4)
    with pytest.raises(ValueError, match="num_groups"):
        token_stats([torch.zeros(4, 3, dtype=torch.long)], codebook_size=4, num_groups=2)


def test_throughput_meter_counts_calls_and_tokens():
    meter = ThroughputMeter()
    for _ in range(3):
        assert meter.time(lambda x: x + 1, 1, tokens=100) == 2
    r = meter.result()
    assert r.clips_per_s == pytest.approx(3 / r.seconds) and r.tokens_per_s == pytest.approx(300 / r.seconds)
    assert r.memory_kind == "cpu_peak_rss" and r.peak_memory_mb > 10 and math.isfinite(r.peak_memory_mb)


_CHILD = "import json, resource; from avtok.eval import peak_rss_mb; " \
         "print(json.dumps([peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))"
_PARENT = f"""
import subprocess, sys
big = bytearray(1500 * 2**20)
big[::4096] = b"\\x01" * len(big[::4096])  # touch every page: ~1.5 GB resident in the parent
del big
print(subprocess.run([sys.executable, "-c", {_CHILD!r}], capture_output=True, text=True, check=True).stdout)
"""


def test_peak_rss_is_the_process_own_not_its_parents():
    """A child started by a process that once held 1.5 GB reports its own peak; ru_maxrss (kept across
    exec by the kernel) reports the parent's, which is why peak_rss_mb reads VmHWM."""
    res = subprocess.run([sys.executable, "-c", _PARENT], capture_output=True, text=True, check=True)
    own, inherited = json.loads(res.stdout.strip().splitlines()[-1])
    assert inherited > 1500 and own < 1000, (own, inherited)  # importing avtok.eval is ~0.5 GB
    assert own > 10
