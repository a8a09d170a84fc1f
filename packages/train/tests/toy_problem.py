"""A tiny deterministic regression problem shared by the training tests and their subprocess workers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


def make_dataset(n: int = 64, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    w = torch.randn(6, 2, generator=g)
    y = torch.tanh(x @ w) + 0.05 * torch.randn(n, 2, generator=g)
    return list(zip(x, y, strict=True))


class ToyNet(nn.Module):
    """encoder (Linear + LayerNorm [+ Dropout]) → decoder Linear; 'encoder' gets lr multipliers in tests."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.GELU(), nn.Dropout(dropout))
        self.decoder = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def step_fn(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    x, y = batch
    pred = model(x)  # (B, 2)
    return {"loss": (pred - y).square().mean(), "l1": (pred - y).abs().mean()}


def make_model(seed: int = 0, dropout: float = 0.0) -> ToyNet:
    torch.manual_seed(seed)
    return ToyNet(dropout)


class ListTracker:
    """In-memory tracker recording every call (params, metrics per step, artifacts)."""

    def __init__(self) -> None:
        self.params: dict = {}
        self.metrics: list[tuple[int | None, dict[str, float]]] = []
        self.artifacts: list[tuple[str, str | None]] = []
        self.closed = False

    def log_params(self, params) -> None:
        self.params.update(params)

    def log_metrics(self, metrics, *, step=None) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path, *, artifact_path=None) -> None:
        self.artifacts.append((str(path), artifact_path))

    def close(self, status: str = "FINISHED") -> None:
        self.closed = True

    def series(self, key: str) -> dict[int, float]:
        return {step: m[key] for step, m in self.metrics if key in m}


class JsonlTracker(ListTracker):
    """Appends each metrics call to a JSONL file at once (survives SIGKILL of the process)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)

    def log_metrics(self, metrics, *, step=None) -> None:
        super().log_metrics(metrics, step=step)
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
            f.flush()
