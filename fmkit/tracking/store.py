"""Talking to an MLflow tracking store: the client, the experiment, finding a run by its fmkit tags, batches.

Shared by the after-the-fact export (mlflow_export.py) and the live callback (live.py). mlflow is imported
here, inside functions, never at module import. fmkit runs offline: MLflow's usage telemetry is switched
off before mlflow is imported. MLflow 3 keeps its file store in maintenance mode behind
``MLFLOW_ALLOW_FILE_STORE=true``; a directory given to ``--mlflow`` is a file store on purpose (the issue's
"file store by default", opened by the ``mlflow ui`` a user already has), so fmkit sets that switch for
file: URIs in its own process and docs/tracking.md tells the user to set it for the UI.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

from fmkit.errors import BadInputError
from fmkit.tracking.flatten import chunks

TAG_PREFIX = "fmkit."


def open_client(uri: str):
    """An ``MlflowClient`` on the already resolved tracking ``uri`` (fmkit/tracking/uri.py)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (and for a new store, creates) it now, not mid-run
    except MlflowException as error:
        raise BadInputError(f"--mlflow {uri}: MLflow cannot open this tracking store: {error.message}") from error
    return client


def experiment_id(client, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if missing; its artifacts beside a SQLite database."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage != "active":
            raise BadInputError(f"MLflow experiment {name!r} in {uri} is deleted; restore it "
                                f"(`mlflow experiments restore --experiment-id {experiment.experiment_id}`) "
                                "or pick another name")
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # else MLflow puts them in ./mlruns of whatever directory it runs from
        database = Path(urlparse(uri).path[1:])  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
        location = (database.resolve().parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location, tags={"fmkit.created_by": "fmkit"})


def find_run(client, experiment: str, tags: dict[str, str]):
    """The active run of ``experiment`` carrying every tag in ``tags`` (newest if several), or None."""
    clauses = " and ".join(f"tags.`{key}` = '{_quote(value)}'" for key, value in tags.items())
    runs = client.search_runs([experiment], filter_string=clauses, max_results=5, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def log_batches(client, run_id: str, *, params: dict[str, str] | None = None, metrics: list | None = None,
                tags: dict[str, str] | None = None) -> None:
    """Log ``params`` (name -> text), ``metrics`` ((key, value, step, timestamp_ms) tuples) and ``tags`` in
    batches MLflow accepts (100 params, 100 tags, 1,000 metrics per call)."""
    from mlflow.entities import Metric, Param, RunTag

    for batch in chunks([Param(key, value) for key, value in (params or {}).items()], 100):
        client.log_batch(run_id, params=batch)
    for batch in chunks([RunTag(key, str(value)) for key, value in (tags or {}).items()], 100):
        client.log_batch(run_id, tags=batch)
    for batch in chunks([Metric(key, value, timestamp, step) for key, value, step, timestamp in (metrics or [])], 1000):
        client.log_batch(run_id, metrics=batch)


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(text: str | None) -> int | None:
    """An ISO-8601 time from the registry or a manifest as MLflow's epoch milliseconds (None if absent)."""
    if not text:
        return None
    import datetime as _dt

    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def ui_command(uri: str) -> str:
    """The command that opens ``uri`` in the MLflow UI (docs/tracking.md)."""
    if uri.startswith("file:"):
        return f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {uri}"
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri}"
    return f"open {uri} in a browser"
