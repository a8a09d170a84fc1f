"""One thin experiment tracker: log params, metrics, artifacts; close. MLflow backend + null backend.

Only entry points (CLI, trainers) talk to a tracker; library code returns data. The MLflow backend
uses ``MlflowClient`` with an explicit run id (never MLflow's global "active run"), logs from rank 0
only, and defaults to an embedded sqlite store in the working directory (``./mlflow.db``, artifacts
in ``./mlartifacts``). Browse the same runs with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``.

Metrics go up in batches (``log_batch``); every run carries tags saying where it ran
(:mod:`avtok.eval.run_tags`);
:func:`tracked_run` ends it FINISHED / FAILED / KILLED as it really ended; :func:`tracker_for_folder` lets a
resumed training continue its own MLflow run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlparse

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl


__all__ = [
    "Tracker",
    "NullTracker",
    "PrefixedTracker",
    "MlflowTracker",
    "tracker_for_folder",
    "tracked_run",
    "Terminated",
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


@contextmanager
def _store_lock(tracking_uri: str):
    """Hold an inter-process lock on an embedded sqlite store. MLflow creates and migrates the schema of a
    new store on first use, and processes doing that at once fail (four runs started together on a fresh
    ``mlflow.db``: all four crashed in alembic); two runs creating the same experiment race the same way.
    The lock file lives in the temp folder (keyed by the store's path), not next to the user's files."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    db = Path(tracking_uri[len("sqlite:///") :]).resolve()
    key = hashlib.sha256(str(db).encode()).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"avtok-mlflow-{key}.lock")):
        yield


def _client(tracking_uri: str):
    """An ``MlflowClient`` whose store exists: a new sqlite store is created under :func:`_store_lock`."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise ImportError("MLflow tracking needs mlflow: pip install 'avtok-eval[mlflow]'") from exc
    with _store_lock(tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)  # opens the store: creates / migrates its schema
    return client


def _metric_key(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", name)


# MLflow's log_batch limits per request (REST API): 1000 metrics, 100 params, 100 tags.
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MlflowTracker:
    """Logs to one MLflow run, addressed by its id. Ranks other than 0 log nothing.

    Pass ``run_id`` to continue a run (a resumed training): its previous attempt's status is recorded as
    the tag ``avtok.attempt.<n>`` (an attempt still RUNNING was killed: it is marked KILLED first) and the
    run is RUNNING again. Otherwise a run is created in ``experiment`` (created if needed) with the
    :func:`avtok.eval.run_tags.run_tags` tags (git commit, dirty flag, package / torch / CUDA versions,
    device, command line).

    Metrics are buffered and sent with ``log_batch`` (up to 1000 per request) every ``flush_seconds``,
    when 1000 are waiting, and on :meth:`flush` / :meth:`close`. NaN (a metric not computed) is left out;
    +-inf is stored as NaN with the tag ``avtok.inf.<key>`` = ``+inf`` / ``-inf``.
    """

    def __init__(
        self,
        *,
        experiment: str,
        tracking_uri: str | None = None,
        run_name: str | None = None,
        run_id: str | None = None,
        rank: int | None = None,
        device: str | None = None,
        tags: Mapping[str, str] | None = None,
        flush_seconds: float = 15.0,
    ) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.enabled = (process_rank() if rank is None else rank) == 0
        self.run_id = run_id
        self.flush_seconds = flush_seconds
        self._pending: list = []
        self._last_flush = time.monotonic()
        self._params: dict[str, str] = {}
        self._inf_tagged: set[str] = set()
        self.attempt = 1
        if not self.enabled:
            return
        self.client = _client(self.tracking_uri)
        if run_id is None:
            with _store_lock(self.tracking_uri):  # one creator of a new experiment
                exp = self.client.get_experiment_by_name(experiment)
                exp_id = (
                    exp.experiment_id
                    if exp
                    else self.client.create_experiment(
                        experiment, artifact_location=_artifact_root(self.tracking_uri)
                    )
                )
            self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        else:
            self._reopen()
        from avtok.eval.run_tags import run_tags

        self.set_tags({**run_tags(device=device), **(tags or {})})

    def _reopen(self) -> None:
        """Continue an existing run: record how its last attempt ended, then mark it RUNNING again."""
        run = self.client.get_run(self.run_id)
        self._params = dict(run.data.params)
        self.attempt = int(run.data.tags.get("avtok.attempts", "1")) + 1
        ended = run.info.status
        if ended == "RUNNING":  # nobody closed it: the process was killed (SIGKILL, power, OOM)
            self.client.set_terminated(self.run_id, status="KILLED")
            ended = "KILLED"
        self.set_tags({f"avtok.attempt.{self.attempt - 1}": ended, "avtok.attempts": str(self.attempt)})
        self.client.update_run(self.run_id, status="RUNNING")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled or not tags:
            return
        from mlflow.entities import RunTag

        items = [RunTag(_metric_key(k), str(v)[:5000]) for k, v in tags.items()]
        for chunk in _chunks(items, _MAX_TAGS):
            self.client.log_batch(self.run_id, tags=chunk)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """One ``log_batch`` per 100 params. A continued run keeps its first value of a param; a changed
        value is stored as the tag ``avtok.param.<key>.attempt<n>`` (MLflow params are immutable)."""
        if not self.enabled:
            return
        from mlflow.entities import Param

        new, changed = {}, {}
        for key, value in params.items():
            key, text = _metric_key(key), str(value)[:6000]
            if key not in self._params:
                new[key] = text
            elif self._params[key] != text:
                changed[f"avtok.param.{key}.attempt{self.attempt}"] = text
        for chunk in _chunks([Param(k, v) for k, v in new.items()], _MAX_PARAMS):
            self.client.log_batch(self.run_id, params=chunk)
        self._params.update(new)
        self.set_tags(changed)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        stamp, infs = int(time.time() * 1000), {}
        for key, value in metrics.items():
            v, key = float(value), _metric_key(key)
            if math.isnan(v):
                continue  # a metric that was not computed is simply absent
            if math.isinf(v):  # identity PSNR, silent SI-SDR: NaN in the store, the sign in a tag
                if key not in self._inf_tagged:
                    infs[f"avtok.inf.{key}"] = "+inf" if v > 0 else "-inf"
                    self._inf_tagged.add(key)
                v = math.nan
            self._pending.append(Metric(key, v, stamp, step or 0))
        self.set_tags(infs)
        if len(self._pending) >= _MAX_METRICS or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Send every buffered metric now (``log_batch``, 1000 per request)."""
        if self.enabled:
            for chunk in _chunks(self._pending, _MAX_METRICS):
                self.client.log_batch(self.run_id, metrics=chunk)
        self._pending, self._last_flush = [], time.monotonic()

    def log_artifact(self, path: str | Path, *, artifact_path: str | None = None) -> None:
        """A file, or a folder's whole tree (one call; relative links between its files keep working)."""
        if self.enabled:
            if not Path(path).exists():
                raise FileNotFoundError(f"artifact {path}: no such file; write it before logging")
            if Path(path).is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def artifact_base(self, path: str = "") -> str | None:
        """The server-root-relative path under which ``mlflow server`` / ``mlflow ui`` serve this run's
        artifact ``path`` by path (``/api/2.0/mlflow-artifacts/artifacts/<...>/<path>``): with the
        embedded store that is the default ``--artifacts-destination ./mlartifacts`` started beside
        ``mlflow.db``. None when the artifacts live elsewhere."""
        if not self.enabled or self.run_id is None:
            return None
        uri = self.client.get_run(self.run_id).info.artifact_uri
        if uri.startswith("mlflow-artifacts:"):
            rel = urlparse(uri).path.strip("/")
        else:
            root = _artifact_root(self.tracking_uri)
            if root is None or not uri.startswith(root + "/"):
                return None
            rel = uri[len(root) + 1 :].strip("/")
        return f"/api/2.0/mlflow-artifacts/artifacts/{rel}/{path.lstrip('/')}"

    def artifact_url(self, path: str, *, server: str = "http://127.0.0.1:5000") -> str | None:
        """:meth:`artifact_base` on ``server`` (the tracking server itself when tracking over HTTP)."""
        base = self.artifact_base(path)
        if base is None:
            return None
        server = self.tracking_uri if self.tracking_uri.startswith("http") else server
        return server.rstrip("/") + base

    def close(self, status: str = "FINISHED") -> None:
        if self.enabled and self.run_id is not None:
            self.flush()
            self.client.set_terminated(self.run_id, status=status)


RUN_FILE = "mlflow_run.json"


def tracker_for_folder(
    folder: str | Path,
    *,
    experiment: str,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    resume: bool = False,
    device: str | None = None,
    only_interrupted: bool = False,
) -> MlflowTracker:
    """The tracker of a run that lives in ``folder`` (a checkpoint or cache folder), which remembers its
    MLflow run in ``mlflow_run.json``. With ``resume`` the same MLflow run continues (its curves stay one
    curve; a killed attempt is marked KILLED); ``only_interrupted`` continues it only when its last attempt
    never closed (the main job: a finished job's rerun is a new run). Otherwise a new run is created, and
    a remembered one left RUNNING (killed, now replaced) is marked KILLED."""
    uri = tracking_uri or default_tracking_uri()
    ref_path = Path(folder) / RUN_FILE
    ref = _read_ref(ref_path, uri)
    if process_rank() != 0:
        return MlflowTracker(experiment=experiment, tracking_uri=uri, rank=1)
    if ref is not None:
        status = _client(uri).get_run(ref).info.status
        if resume and (not only_interrupted or status == "RUNNING"):
            return MlflowTracker(experiment=experiment, tracking_uri=uri, run_id=ref, device=device)
        if status == "RUNNING":
            _client(uri).set_terminated(ref, status="KILLED")
    tracker = MlflowTracker(experiment=experiment, tracking_uri=uri, run_name=run_name, device=device)
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"tracking_uri": uri, "experiment": experiment, "run_id": tracker.run_id}))
    tmp.replace(ref_path)
    return tracker


def _read_ref(path: Path, uri: str) -> str | None:
    """The remembered run id, if it belongs to this tracking store and still exists there."""
    try:
        ref = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(ref, dict) or ref.get("tracking_uri") != uri or not ref.get("run_id"):
        return None
    try:
        _client(uri).get_run(ref["run_id"])
    except Exception:  # noqa: BLE001 - deleted run or another store at the same path: start afresh
        return None
    return str(ref["run_id"])


class Terminated(Exception):
    """SIGTERM while a tracked run was open (raised by :func:`tracked_run`'s handler)."""


@contextmanager
def tracked_run(tracker: Tracker):
    """Close ``tracker`` with the run's real outcome: FINISHED, FAILED on an exception (its message as the
    tag ``avtok.error``), KILLED on Ctrl-C or SIGTERM (then exit code 130 / 143)."""
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, _raise_terminated)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    except (KeyboardInterrupt, Terminated) as exc:
        status = "KILLED"
        if isinstance(exc, Terminated):
            raise SystemExit(143) from exc
        raise
    except (SystemExit, _click_exit()) as exc:
        code = getattr(exc, "code", getattr(exc, "exit_code", 1))
        status = "FINISHED" if code in (0, None) else "FAILED"
        raise
    except BaseException as exc:
        if isinstance(tracker, MlflowTracker):
            tracker.set_tags({"avtok.error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        tracker.close(status)


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"signal {signum}")


def _click_exit() -> type[BaseException]:
    try:
        from click.exceptions import Exit
    except ImportError:  # pragma: no cover - typer always brings click
        return SystemExit
    return Exit


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
