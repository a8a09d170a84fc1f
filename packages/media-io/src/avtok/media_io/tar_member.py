"""TarMember: a media file stored inside an (uncompressed) tar shard, readable by PyAV without extracting.

WebDataset-style shards are plain tar files; a member's bytes lie contiguously at ``offset``, so a
read-only, seekable view of that byte range is all FFmpeg needs (mp4 headers at the end of a file are
reached by seeking, as for a regular file). ``read_clip`` and ``probe`` accept a TarMember wherever
they accept a path.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class TarMember:
    """Member ``name`` of the tar file ``tar``: ``size`` bytes starting at byte ``offset``."""

    tar: str
    name: str
    offset: int
    size: int

    def __str__(self) -> str:
        return f"{self.tar}::{self.name}"

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def open(self) -> io.BufferedReader:
        """A new seekable binary file object over the member's bytes (close it when done)."""
        return io.BufferedReader(_Slice(self), buffer_size=1 << 16)

    def read_bytes(self) -> bytes:
        with open(self.tar, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.size)


class _Slice(io.RawIOBase):
    """Bytes [offset, offset + size) of a file, as a read-only seekable raw stream."""

    def __init__(self, member: TarMember) -> None:
        super().__init__()
        self._fh = open(member.tar, "rb")  # noqa: SIM115 - closed in close()
        self._start, self._size, self._pos = member.offset, member.size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = min(max(base + pos, 0), self._size)
        return self._pos

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(memoryview(buffer)[:n])
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def list_members(tar_path: str | Path) -> list[TarMember]:
    """Regular-file members of an uncompressed tar, in file order (reads headers only)."""
    with tarfile.open(str(tar_path), mode="r:") as tar:
        return [
            TarMember(str(tar_path), info.name, info.offset_data, info.size) for info in tar if info.isfile()
        ]


def sample_key(name: str) -> tuple[str, str]:
    """WebDataset convention: ``dir/abc.video.npy`` -> key ``dir/abc``, field ``video.npy``."""
    path = PurePosixPath(name)
    stem, _, field = path.name.partition(".")
    return str(path.parent / stem) if str(path.parent) != "." else stem, field


def media_path(path: str | Path | TarMember) -> Path | TarMember:
    """A TarMember unchanged, anything else as a Path."""
    return path if isinstance(path, TarMember) else Path(path)
