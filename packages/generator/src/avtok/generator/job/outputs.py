"""The main job's output folder: only ever written into, never emptied of files the job did not create.

The job records what it wrote in ``<out>/.avtok-outputs.json``. A later run removes exactly those files
(its previous report, tables and media) before writing new ones; everything else in the folder stays. A
folder that holds files but no manifest was not written by the job (e.g. ``--out`` pointing at the user's
videos) and is refused before anything runs.
"""

from __future__ import annotations

from pathlib import Path

from avtok.train.atomic import atomic_write_json

__all__ = ["MANIFEST", "OutputFolder"]

MANIFEST = ".avtok-outputs.json"


class OutputFolder:
    """``OutputFolder.open(out)`` validates ``out``; ``clean()`` removes the previous run's outputs only;
    ``commit()`` records the files this run added (call it after writing them)."""

    def __init__(self, path: Path, previous: list[str]) -> None:
        self.path, self.previous = path, previous
        self._before: set[str] = set()

    @classmethod
    def open(cls, out: str | Path) -> OutputFolder:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {path}: is a file; pass a folder for the report")
        previous = cls._read_manifest(path)
        if previous is None:
            foreign = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
            if foreign:
                raise ValueError(
                    f"--out {path}: holds {len(foreign)} files the main job did not write (e.g. "
                    f"{foreign[0]}); "
                    "pass an empty or new folder (the job never deletes or replaces files it did not create)"
                )
            previous = []
        return cls(path, previous)

    @staticmethod
    def _read_manifest(path: Path) -> list[str] | None:
        import json

        f = path / MANIFEST
        if not f.is_file():
            return None
        try:
            names = json.loads(f.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{f}: unreadable output manifest ({err}); delete it and the job's files by hand, "
                "or pass a new --out folder"
            ) from err
        return [n for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")]

    def clean(self) -> list[str]:
        """Remove the files the previous run of the job wrote (and only those); returns their names."""
        self.path.mkdir(parents=True, exist_ok=True)
        removed = []
        for name in self.previous:
            f = self.path / name
            if f.is_file():
                f.unlink()
                removed.append(name)
        self._before = {p.name for p in self.path.iterdir()}
        return removed

    def commit(self) -> list[Path]:
        """Record every file that appeared since ``clean()`` as this run's outputs; returns them."""
        names = sorted(
            p.name
            for p in self.path.iterdir()
            if p.is_file() and p.name not in self._before and p.name != MANIFEST
        )
        atomic_write_json(self.path / MANIFEST, {"files": names})
        self._before = set()
        return [self.path / n for n in names]
