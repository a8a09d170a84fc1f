"""Two gloo ranks update CodebookStats with different indices, all-reduce, rank 0 saves the counts.

Run as a script by test_codebook.py (``python ddp_codebook_worker.py OUT.pt``): spawned workers must
be importable functions, which a pytest-imported test module is not.
"""

from __future__ import annotations

import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from avtok.kernels import CodebookStats


def rank_indices(rank: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + rank)
    return torch.randint(0, 16 if rank == 0 else 64, (50 + 7 * rank, 3), generator=gen)  # (N, G)


def worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        stats = CodebookStats(64, num_groups=3)
        stats.update(rank_indices(rank))
        stats.update(rank_indices(rank)[:5])  # accumulate over two batches
        stats.all_reduce()
        if rank == 0:
            torch.save({"counts": stats.counts, "usage": stats.usage(), "ppl": stats.perplexity()}, out)
        dist.barrier()  # tear the gloo group down together, not while rank 0 is still writing
    finally:
        dist.destroy_process_group()


def main(out: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(worker, args=(2, port, out), nprocs=2, join=True)


if __name__ == "__main__":
    main(sys.argv[1])
