"""Data sources: one string names a file, a folder, a manifest, a bundled sample, or tar shards.

``parse_source(spec)`` accepts
- ``sample:<name>``: a clip bundled in a PyPI package (see :mod:`avtok.media_io.samples`);
- a media file, or a folder (media files found recursively, sorted);
- a manifest ``.csv`` / ``.jsonl`` / ``.parquet`` (read with polars; column ``path`` required, optional
  ``start``, ``end`` (seconds), ``caption``, ``label``, ``split``; relative paths resolve against the
  manifest's folder), or a ``.txt`` / ``.lst`` list (one path per line);
- WebDataset-style tar shards: a ``.tar`` file, a brace pattern (``shards/train-{00000..00009}.tar``)
  or a folder of ``.tar`` files. Shards holding raw media (``key.mp4`` + optional ``key.json`` /
  ``key.txt`` / ``key.cls``) become media items read in place; shards of pre-extracted windows
  (``key.video.npy`` + ``key.audio.npy`` + ``key.json``, written by ``avtok-media-io shard``) are read
  as windows. A folder holding an ``index.json`` written by that command is read through it.
Several specs may be given as a list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from avtok.media_io.errors import MediaError
from avtok.media_io.samples import sample_path
from avtok.media_io.tar_member import TarMember, list_members, sample_key

MEDIA_EXTENSIONS = frozenset(".mp4 .mkv .webm .avi .mpg .mpeg .mov .m4v .ogv .flv .wmv .3gp .ts .vob".split())
MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".parquet", ".txt", ".lst"})
HELDOUT_SPLITS = frozenset({"heldout", "val", "valid", "validation", "test", "eval"})
SHARD_INDEX = "index.json"


@dataclass(frozen=True, kw_only=True)
class MediaItem:
    """One media file (or tar member) with an optional time span and its annotations."""

    path: Path | TarMember
    start: float = 0.0
    end: float | None = None  # None: to the end of the file
    caption: str = ""
    label: str | None = None
    split: str | None = None  # "train", a held-out name (val/test/heldout/eval), or None: decided by rules

    @property
    def heldout(self) -> bool | None:
        """True/False when the manifest names the split, None when the hold-out rules decide."""
        return None if self.split is None else self.split.lower() in HELDOUT_SPLITS


@dataclass(frozen=True, kw_only=True)
class WindowShard:
    """A tar shard of pre-extracted windows: ``count`` samples, of the ``split`` it was written for."""

    path: Path
    count: int
    split: str = "train"


@dataclass(kw_only=True)
class Source:
    """What a spec names: raw media items, or shards of pre-extracted windows (never both)."""

    spec: str
    items: list[MediaItem] = field(default_factory=list)
    shards: list[WindowShard] = field(default_factory=list)
    shard_config: dict | None = None  # the WindowConfig the shards were written with (from index.json)
    labels: list[str] = field(default_factory=list)  # the shards' label vocabulary (from index.json)

    @property
    def kind(self) -> str:
        return "shards" if self.shards else "media"


def list_media(folder: str | Path) -> list[Path]:
    """Media files under a folder (recursive, sorted by path)."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)


def _opt_float(row: dict, key: str) -> float | None:
    value = row.get(key)
    return None if value is None or value == "" else float(value)


def _opt_str(row: dict, key: str) -> str | None:
    value = row.get(key)
    return None if value is None or value == "" else str(value)


def _read_rows(path: Path) -> list[dict]:
    import polars as pl

    suffix = path.suffix.lower()
    if suffix in (".txt", ".lst"):
        return [{"path": ln.strip()} for ln in path.read_text().splitlines() if ln.strip()]
    try:
        if suffix == ".csv":
            frame = pl.read_csv(path, infer_schema_length=0)  # every column as text; cast below
        elif suffix == ".jsonl":
            frame = pl.read_ndjson(path)
        else:
            frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several error types for malformed files
        raise MediaError(f"cannot read the manifest ({exc}); fix: check its format", path=path) from exc
    if "path" not in frame.columns:
        raise MediaError(f"manifest has no 'path' column (columns: {frame.columns}); fix: add one", path=path)
    return frame.to_dicts()


def read_manifest(path: str | Path) -> list[MediaItem]:
    """Items of a CSV / JSONL / Parquet manifest or a .txt path list (paths relative to its folder)."""
    path = Path(path)
    items = []
    for row in _read_rows(path):
        media = Path(str(row["path"]))
        label = _opt_str(row, "label")
        items.append(
            MediaItem(
                path=media if media.is_absolute() else path.parent / media,
                start=_opt_float(row, "start") or 0.0,
                end=_opt_float(row, "end"),
                caption=_opt_str(row, "caption") or "",
                label=label,
                split=_opt_str(row, "split"),
            )
        )
    return items


def _member_meta(members: dict[str, TarMember]) -> tuple[str, str | None]:
    caption, label = "", None
    if "json" in members:
        meta = json.loads(members["json"].read_bytes())
        caption, label = str(meta.get("caption", "")), meta.get("label")
    if "txt" in members:
        caption = members["txt"].read_bytes().decode("utf-8").strip()
    if "cls" in members:
        label = members["cls"].read_bytes().decode("utf-8").strip()
    return caption, None if label is None else str(label)


def _read_tar(path: Path) -> tuple[list[MediaItem], int]:
    """(raw media items, number of pre-extracted window samples) of one tar shard."""
    groups: dict[str, dict[str, TarMember]] = {}
    for member in list_members(path):
        key, fieldname = sample_key(member.name)
        groups.setdefault(key, {})[fieldname] = member
    items, windows = [], 0
    for members in groups.values():
        if "video.npy" in members:
            windows += 1
            continue
        media = [m for f, m in members.items() if "." + f.rsplit(".", 1)[-1] in MEDIA_EXTENSIONS]
        if media:
            caption, label = _member_meta(members)
            items.append(MediaItem(path=media[0], caption=caption, label=label))
    return items, windows


def _expand(spec: str) -> list[Path]:
    from braceexpand import braceexpand

    return [Path(p) for p in braceexpand(spec)]


def _shard_index(folder: Path) -> Source:
    index = json.loads((folder / SHARD_INDEX).read_text())
    if index.get("format") != "avtok-window-shards-v1":
        raise MediaError(
            f"{SHARD_INDEX} has format {index.get('format')!r}; fix: re-write it with avtok-media-io shard",
            path=folder,
        )
    shards = [
        WindowShard(path=folder / s["file"], count=int(s["count"]), split=s["split"]) for s in index["shards"]
    ]
    return Source(
        spec=str(folder), shards=shards, shard_config=index["config"], labels=index.get("labels", [])
    )


def _tars(spec: str, paths: list[Path]) -> Source:
    source = Source(spec=spec)
    for path in paths:
        if not path.is_file():
            raise MediaError("tar shard not found; fix: check the path or brace pattern", path=path)
        items, windows = _read_tar(path)
        if items and windows:
            raise MediaError(
                "shard mixes raw media and pre-extracted windows; fix: keep them apart", path=path
            )
        source.items += items
        if windows:
            source.shards.append(WindowShard(path=path, count=windows))
    if source.items and source.shards:
        raise MediaError(f"{spec}: shards mix raw media and pre-extracted windows; fix: pass them separately")
    return source


def _one(spec: str) -> Source:
    if spec.startswith("sample:"):
        return Source(spec=spec, items=[MediaItem(path=sample_path(spec.split(":", 1)[1]))])
    if "{" in spec and "}" in spec:
        return _tars(spec, _expand(spec))
    path = Path(spec)
    if path.is_dir():
        if (path / SHARD_INDEX).is_file():
            return _shard_index(path)
        media = list_media(path)
        tars = sorted(path.rglob("*.tar"))
        if tars and not media:
            return _tars(spec, tars)
        return Source(spec=spec, items=[MediaItem(path=p) for p in media])
    if not path.exists():
        raise MediaError(
            "data source not found; fix: pass a media file, a folder, a manifest (.csv/.jsonl/.parquet/"
            ".txt), tar shards (.tar or a {000..009} pattern) or sample:<name>",
            path=path,
        )
    suffix = path.suffix.lower()
    if suffix == ".tar":
        return _tars(spec, [path])
    if suffix in MANIFEST_EXTENSIONS:
        return Source(spec=spec, items=read_manifest(path))
    return Source(spec=spec, items=[MediaItem(path=path)])


def parse_source(spec: str | Path | Sequence[str | Path]) -> Source:
    """The items (or window shards) a spec names; a list of specs is concatenated in order."""
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not specs:
        raise MediaError("empty data source list; fix: pass at least one file, folder or manifest")
    parts = [_one(str(s)) for s in specs]
    if len({p.kind for p in parts}) > 1:
        raise MediaError(f"{specs}: mixes raw media and pre-extracted window shards; fix: pass one kind")
    merged = Source(
        spec=",".join(p.spec for p in parts), shard_config=parts[0].shard_config, labels=parts[0].labels
    )
    for part in parts:
        merged.items += part.items
        merged.shards += part.shards
    return merged
