"""The end-of-run summary: a dataclass (returned by ``Trainer.fit``) and its printed table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TrainSummary"]


@dataclass(kw_only=True)
class TrainSummary:
    start_step: int
    steps: int  # the global step reached
    skipped_steps: int  # non-finite steps the guard skipped (over the whole run, resumes included)
    stop_reason: str  # "max_steps" or "max_minutes"
    wall_seconds: float
    steps_per_second: float
    last_metrics: dict[str, float]
    eval_metrics: dict[str, float]
    best: dict[str, Any] | None  # {"step", "value"} of the best checkpoint
    checkpoint: Path | None  # the last checkpoint written

    def rows(self) -> list[tuple[str, str]]:
        rows = [("steps", f"{self.start_step} -> {self.steps} ({self.stop_reason})"),
                ("wall time", f"{self.wall_seconds:.1f} s ({self.steps_per_second:.2f} steps/s)"),
                ("skipped (non-finite)", str(self.skipped_steps))]
        rows += [(k, f"{v:.6g}") for k, v in sorted(self.last_metrics.items())]
        rows += [(k, f"{v:.6g}") for k, v in sorted(self.eval_metrics.items())]
        if self.best is not None:
            rows.append(("best checkpoint", f"step {self.best['step']} ({self.best['value']:.6g})"))
        if self.checkpoint is not None:
            rows.append(("last checkpoint", str(self.checkpoint)))
        return rows

    def print(self) -> None:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:  # pragma: no cover - rich is optional
            print("\n".join(f"{k:>24}  {v}" for k, v in self.rows()))
            return
        table = Table(title="training summary", show_header=False)
        for key, value in self.rows():
            table.add_row(key, value)
        Console(stderr=True).print(table)
