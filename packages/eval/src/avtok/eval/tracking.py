"""One thin experiment tracker: log params, metrics, artifacts; close. MLflow backend + null backend.

Only entry points (CLI, trainers) talk to a tracker; library code returns data. The MLflow backend
uses ``MlflowClient`` with an explicit run id (never MLflow's global "active run"), logs from rank 0
only, and defaults to an embedded sqlite store in the working directory (``./mlflow.db``, artifacts
in ``./mlartifacts``). Browse the same runs with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl


__all__ = [
    "Tracker",
    "NullTracker",
    "PrefixedTracker",
    "MlflowTracker",
    "default_tracking_uri",
    "compare_runs",
    "process_rank",
]


@runtime_checkable
class Tracker(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None: ...

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None: ...

    def close(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Accepts everything, stores nothing (non-zero ranks, dry runs, tests)."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass


class PrefixedTracker:
    """A view of another tracker that prefixes names, so several jobs (stages, models) share one run:
    params as ``<prefix>.<name>``, metrics as ``<prefix>/<name>``, artifacts under ``<prefix>/``.
    ``close`` does nothing: whoever opened the real tracker closes it."""

    def __init__(self, inner: Tracker, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.inner.log_params({f"{self.prefix}.{k}": v for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        self.inner.log_metrics({f"{self.prefix}/{k}": v for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None:
        self.inner.log_artifact(path, artifact_path=f"{self.prefix}/{artifact_path or ''}".rstrip("/"))

    def close(self, status: str = "FINISHED") -> None:
        pass


def process_rank() -> int:
    """Global rank from torch.distributed when initialised, else the RANK environment variable, else 0."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except ImportError:  # pragma: no cover - torch always has it
        pass
    return int(os.environ.get("RANK", "0"))


def default_tracking_uri() -> str:
    """Embedded store: ``sqlite:///<cwd>/mlflow.db``."""
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _artifact_root(tracking_uri: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return None


def _client(tracking_uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise ImportError("MLflow tracking needs mlflow: pip install 'avtok-eval[mlflow]'") from exc
    return MlflowClient(tracking_uri=tracking_uri)


def _metric_key(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", name)


class MlflowTracker:
    """Logs to one MLflow run, addressed by its id. Ranks other than 0 log nothing.

    Pass ``run_id`` to resume a run; otherwise one is created in ``experiment`` (created if needed).
    """

    def __init__(
        self,
        *,
        experiment: str,
        tracking_uri: str | None = None,
        run_name: str | None = None,
        run_id: str | None = None,
        rank: int | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.enabled = (process_rank() if rank is None else rank) == 0
        self.run_id = run_id
        if not self.enabled:
            return
        self.client = _client(self.tracking_uri)
        if run_id is None:
            exp = self.client.get_experiment_by_name(experiment)
            exp_id = (
                exp.experiment_id
                if exp
                else self.client.create_experiment(
                    experiment, artifact_location=_artifact_root(self.tracking_uri)
                )
            )
            self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            for key, value in params.items():
                self.client.log_param(self.run_id, key, str(value)[:6000])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        if not self.enabled:
            return
        for key, value in metrics.items():
            v = float(value)
            if math.isnan(v):
                continue  # MLflow stores NaN poorly; a metric that was not computed is simply absent
            v = max(min(v, 1.7e308), -1.7e308)  # +-inf (identity PSNR, silent SI-SDR) as the largest finite
            self.client.log_metric(self.run_id, _metric_key(key), v, step=step or 0)

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None:
        if self.enabled:
            if not Path(path).exists():
                raise FileNotFoundError(f"artifact {path}: no such file; write it before logging")
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def close(self, status: str = "FINISHED") -> None:
        if self.enabled and self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def compare_runs(experiment: str, *, tracking_uri: str | None = None) -> pl.DataFrame:
    """All runs of ``experiment``: run id, name, status, ``params.*`` and ``metrics.*`` columns (latest values)."""
    import polars as pl  # only for the result table (GPU images ship without polars)

    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise ValueError(f"experiment {experiment!r} not found in {uri}; known experiments: {names}")
    rows = []
    for run in client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]):
        row: dict[str, Any] = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "status": run.info.status,
        }
        row.update({f"params.{k}": v for k, v in sorted(run.data.params.items())})
        row.update({f"metrics.{k}": float(v) for k, v in sorted(run.data.metrics.items())})
        rows.append(row)
    if not rows:
        return pl.DataFrame(schema={"run_id": pl.String, "run_name": pl.String, "status": pl.String})
    return pl.DataFrame(rows, infer_schema_length=None)
