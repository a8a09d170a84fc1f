"""Run under ``torchrun --nproc-per-node N``: each rank streams one epoch of a WindowDataset through a
WindowLoader with ``--workers`` DataLoader workers (rank and world size from the gloo process group) and
writes the windows it was given, in order, to ``<out>/rank<r>.json`` as [file name, start] pairs."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch.distributed as dist

from avtok.media_io import WindowDataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--window", required=True, help="WindowConfig fields as JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    dist.init_process_group("gloo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = WindowDataset(args.data, **json.loads(args.window), seed=args.seed, buffer_size=4,
                           chunk_windows=2)
    seen = []
    for batch in ds.loader(2, num_workers=args.workers):
        seen += [[Path(s).name, round(float(t), 4)] for s, t in zip(batch.source, batch.start, strict=True)]
    rank = dist.get_rank()
    result = {"world_size": dist.get_world_size(), "windows": seen}
    (args.out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
