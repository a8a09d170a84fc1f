"""Pre-extracted window shards: WebDataset-style tar files of decoded, resized windows (+ mel).

Each sample is ``<key>.video.npy`` (T, H, W, 3) uint8, ``<key>.audio.npy`` (C, N) float32, optionally
``<key>.mel.npy`` (n_mels, F) float32, and ``<key>.json`` (source, start, caption, label). Shards are
written with ``webdataset.TarWriter`` (so any WebDataset reader can open them) and named
``<split>-NNNNN.tar``; ``index.json`` beside them records the WindowConfig, each shard's sample count
and split, and the planning/reading counts. :class:`~avtok.media_io.datasets.WindowDataset` reads them
with the same sharding, shuffling and resume logic as raw media: a unit is a run of consecutive
samples of one shard, read at byte offsets from the shard's tar headers (parsed once per worker).
Arrays are read with
``allow_pickle=False`` (no pickle anywhere).
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from avtok.media_io.errors import MediaError
from avtok.media_io.sources import SHARD_INDEX, WindowShard, parse_source
from avtok.media_io.tar_member import TarMember, list_members, sample_key
from avtok.media_io.window_plan import DataStats, WindowConfig, WindowPlan, no_windows_error, plan_media
from avtok.media_io.windows import UnitReader, WindowSample, make_sample

_FORMAT = "avtok-window-shards-v1"


def _npy(data: bytes, path: str) -> torch.Tensor:
    try:
        return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
    except ValueError as exc:
        raise MediaError(f"bad .npy member ({exc}); fix: re-write the shard", path=path) from exc


@lru_cache(maxsize=8)
def _samples_of(path: str) -> list[dict[str, TarMember]]:
    """A shard's samples as {field: member} (headers parsed once per worker, not once per unit)."""
    samples: list[dict[str, TarMember]] = []
    key = None
    for member in list_members(path):
        k, fieldname = sample_key(member.name)
        if k != key:
            key = k
            samples.append({})
        samples[-1][fieldname] = member
    return samples


def read_shard_windows(
    shard: WindowShard, first: int, n: int, cfg: WindowConfig, labels: list[str]
) -> list[WindowSample | None]:
    """Samples ``first .. first+n-1`` of a window shard (read at their byte offsets)."""
    groups = []
    with open(shard.path, "rb") as fh:
        for members in _samples_of(str(shard.path))[first : first + n]:
            group = {}
            for fieldname, member in members.items():
                fh.seek(member.offset)
                group[fieldname] = fh.read(member.size)
            groups.append(group)
    label_ids = {name: i for i, name in enumerate(labels)}
    return [_sample(g, shard, cfg, label_ids) for g in groups] + [None] * (n - len(groups))


def _sample(group: dict[str, bytes], shard: WindowShard, cfg: WindowConfig, label_ids: dict) -> WindowSample:
    where = str(shard.path)
    meta = json.loads(group["json"]) if "json" in group else {}
    mel = _npy(group["mel.npy"], where) if "mel.npy" in group else None
    label = meta.get("label")
    return make_sample(
        _npy(group["video.npy"], where),
        _npy(group["audio.npy"], where),
        cfg,
        mel=mel,
        start=meta.get("start", 0.0),
        source=meta.get("source", where),
        caption=meta.get("caption", ""),
        label=label_ids.get(str(label), -1) if label is not None else -1,
    )


def check_shard_config(written: dict | None, cfg: WindowConfig, where: str) -> None:
    """Shards hold windows of one fps / size / length / audio format: refuse another."""
    if written is None:
        return
    have = WindowConfig.from_dict(written)
    keys = ("window_frames", "fps", "size", "sample_rate", "channels")
    diff = {k: (getattr(have, k), getattr(cfg, k)) for k in keys if getattr(have, k) != getattr(cfg, k)}
    if diff:
        raise MediaError(
            f"{where}: the shards were written with other window settings (written, asked): {diff}; "
            "fix: pass the shards' settings or re-run avtok-media-io shard"
        )


def _write_shard(path: Path, jobs: list[tuple], cfg: WindowConfig, labels: list[str]) -> tuple[int, dict]:
    """Decode the units in ``jobs`` ((item, first, k0, n, key), ...) into one tar; (samples, counters)."""
    from webdataset import TarWriter

    reader, count = UnitReader(cfg, labels), 0
    with TarWriter(str(path)) as sink:
        for item, first, k0, n, key in jobs:
            for k, sample in enumerate(reader.read(item, first, k0, n)):
                if sample is None:
                    continue
                record = {
                    "__key__": f"{key}-{k0 + k:05d}",
                    "video.npy": sample.video.numpy(),
                    "audio.npy": sample.audio.numpy(),
                    "json": {
                        "source": sample.source,
                        "start": sample.start,
                        "caption": sample.caption,
                        "label": item.label,
                    },
                }
                if sample.mel is not None:
                    record["mel.npy"] = sample.mel.numpy()
                sink.write(record)
                count += 1
    return count, {**reader.counters, "windows_yielded": count}


def _shard_jobs(plan: WindowPlan, split: str, shard_size: int) -> list[list[tuple]]:
    shards, current, size = [], [], 0
    for _u, (i, k0, n) in enumerate(plan.units.tolist()):
        current.append((plan.items[i], float(plan.first[i]), k0, n, f"{split}{i:07d}"))
        size += n
        if size >= shard_size:
            shards.append(current)
            current, size = [], 0
    return shards + ([current] if current else [])


def write_shards(
    data,
    out_dir: str | Path,
    cfg: WindowConfig,
    *,
    shard_size: int = 256,
    processes: int = 1,
    progress: bool = True,
) -> Path:
    """Decode every window of ``data`` (train and held-out splits) into tar shards under ``out_dir``,
    ``processes`` shards at a time; returns the path of ``index.json``."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = parse_source(data)
    if source.kind != "media":
        raise MediaError(f"{source.spec}: already holds pre-extracted windows; fix: pass raw media")
    tasks, stats, labels = [], {}, sorted({it.label for it in source.items if it.label is not None})
    for split in ("train", "heldout"):
        plan, stats[split] = plan_media(source.items, cfg, split=split, chunk_windows=16)
        tasks += [(split, jobs) for jobs in _shard_jobs(plan, split, shard_size)]
    if not tasks:
        raise no_windows_error(source, "train", stats["train"])
    names = [
        f"{split}-{sum(1 for s, _ in tasks[:i] if s == split):05d}.tar" for i, (split, _) in enumerate(tasks)
    ]
    counts, counters = [0] * len(tasks), DataStats()
    total = sum(n for _, jobs in tasks for *_, n, _k in jobs)
    with (
        ProcessPoolExecutor(max(1, processes)) as pool,
        tqdm(total=total, desc="shard", unit="win", disable=not progress) as bar,
    ):
        futures = {
            pool.submit(_write_shard, out / name, jobs, cfg, labels): i
            for i, (name, (_, jobs)) in enumerate(zip(names, tasks, strict=True))
        }
        for future in as_completed(futures):
            i = futures[future]
            counts[i], got = future.result()
            for k, v in got.items():
                setattr(counters, k, getattr(counters, k) + v)
            bar.update(sum(n for *_, n, _k in tasks[i][1]))
    index = {
        "format": _FORMAT,
        "config": cfg.to_dict(),
        "labels": labels,
        "source": source.spec,
        "shards": [
            {"file": n, "count": c, "split": s} for n, c, (s, _) in zip(names, counts, tasks, strict=True)
        ],
        "stats": {split: asdict(st) for split, st in stats.items()},
        "read": counters.metrics(),
    }
    (out / SHARD_INDEX).write_text(json.dumps(index, indent=1))
    return out / SHARD_INDEX
