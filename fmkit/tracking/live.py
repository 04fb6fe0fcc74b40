"""``--mlflow URI`` on a training stage: a ``TrainCallback`` that logs to MLflow while the model trains.

What it logs: the stage's config as params (at the first event), the running training loss and learning
rate (throttled: at most one point per ``min_interval_seconds`` of wall time, plus the step of every
evaluation and the last step, sent in batches, so a fast loop is not slowed by its tracking), every
validation evaluation (``validation.<metric>`` by step), the training summary at the end, and, when
``finish(manifest)`` is called after the bundle is written, the bundle's metrics per split, its digest
and lineage tags and its manifest and reports as artifacts.

Tracking must not cost the training: the store is opened when the callback is made (so a bad URI fails
before any training), and an error from MLflow while training warns once and stops tracking instead of
ending the run. Under torchrun only rank 0 opens the store; the loop calls callbacks on rank 0 only.
"""

from __future__ import annotations

import atexit
import os
import time
import warnings
from pathlib import Path

from fmkit.train.callbacks import TrainCallback
from fmkit.tracking.flatten import clean_key, flatten_metrics, flatten_params
from fmkit.tracking.uri import resolve_tracking_uri

FLUSH_SECONDS = 5.0  # at most one batch of step metrics per this many seconds


class MlflowLiveCallback(TrainCallback):
    """Live MLflow tracking of one training stage (``fmkit finetune|pretrain --mlflow URI``).

    >>> callback = MlflowLiveCallback("./mlruns", stage="finetune", config=cfg.model_dump(mode="json"))
    >>> manifest = run_finetune(cfg, out, callbacks=[callback]); callback.finish(manifest)
    """

    is_tracking = True

    def __init__(self, uri: str, *, stage: str, config: dict, experiment: str = "fmkit", run_name: str | None = None,
                 bundle_dir: str | Path | None = None, min_interval_seconds: float = 0.5):
        self.uri = resolve_tracking_uri(uri)
        self.stage, self.config, self.experiment_name = stage, dict(config or {}), experiment
        self.run_name = run_name or stage
        self.bundle_dir = Path(bundle_dir) if bundle_dir else None
        self.min_interval_seconds = min_interval_seconds
        self.run_id: str | None = None
        self._client = self._experiment = None
        self._pending: list = []
        self._last_point = self._last_flush = float("-inf")
        self._last_step: tuple | None = None
        self._logged_step: int | None = None
        self._ended = self._finished = self._broken = False
        if int(os.environ.get("RANK", "0") or 0) == 0:
            from fmkit.tracking.store import experiment_id, open_client

            self._client = open_client(self.uri)
            self._experiment = experiment_id(self._client, experiment, self.uri)

    # -- the loop's events -------------------------------------------------------------------------------
    def on_step(self, step: int, loss: float, learning_rate: float) -> None:
        now = time.monotonic()
        self._last_step = (step, loss, learning_rate)
        if now - self._last_point >= self.min_interval_seconds:
            self._point(step, loss, learning_rate)
            self._last_point = now
        if now - self._last_flush >= FLUSH_SECONDS:
            self._flush()

    def on_evaluate(self, step: int, epoch: float, metrics: dict) -> bool:
        self._catch_up(step)
        self._pending += [(clean_key(f"eval.{key}"), value, step) for key, value in flatten_metrics(metrics).items()]
        self._pending.append(("epoch", float(epoch), step))
        self._flush()
        return False

    def on_end(self, result) -> None:
        self._ended = True
        self._catch_up(getattr(result, "steps", None))
        summary = {key: getattr(result, key, None) for key in
                   ("steps", "epochs_completed", "best_metric", "best_step", "train_seconds", "samples_per_second")}
        self._pending += [(f"training.{key}", value, 0) for key, value in flatten_metrics(summary, depth=1).items()]
        self._guard(lambda: self._client.set_tag(self._run(), "fmkit.stopped_early",
                                                 str(bool(getattr(result, "stopped_early", False))).lower()))
        self._flush()

    # -- after the bundle is written --------------------------------------------------------------------
    def finish(self, manifest=None, *, error: BaseException | None = None) -> None:
        """End the MLflow run: with the bundle's metrics, tags and files when ``manifest`` (a Manifest or the
        bundle directory) is given, FAILED when ``error`` is, KILLED when training never ended."""
        if self.run_id is None or self._finished:
            return
        self._finished = True
        atexit.unregister(self._at_exit)
        self._flush()
        if error is not None or not self._ended:
            if error is not None:
                self._guard(lambda: self._client.set_tag(self.run_id, "fmkit.error", f"{type(error).__name__}: {error}"[:5000]))
            status = "KILLED" if isinstance(error, KeyboardInterrupt) or error is None else "FAILED"
            self._guard(lambda: self._client.set_terminated(self.run_id, status))
            return
        directory = Path(manifest) if isinstance(manifest, (str, Path)) else self.bundle_dir
        if directory is not None:
            self._guard(lambda: self._log_bundle(directory))
        self._guard(lambda: self._client.set_terminated(self.run_id, "FINISHED"))

    def _log_bundle(self, directory: Path) -> None:
        from fmkit.tracking.bundle_log import bundle_metrics, bundle_tags, log_bundle_artifacts, read_bundle_manifest
        from fmkit.tracking.store import log_batches, now_ms

        data = read_bundle_manifest(directory)
        if data is None:
            return
        rows = [row for row in bundle_metrics(data, now_ms()) if not row[0].startswith("eval.")]  # logged live
        log_batches(self._client, self.run_id, metrics=rows, tags=bundle_tags(data, directory))
        log_bundle_artifacts(self._client, self.run_id, directory, weights=False)

    def _at_exit(self) -> None:
        bundle = self.bundle_dir if self.bundle_dir is not None and (self.bundle_dir / "fmkit.json").is_file() else None
        self.finish(bundle)

    # -- plumbing ----------------------------------------------------------------------------------------
    def _run(self) -> str:
        """The MLflow run, created at the first event (so ranks and processes that never train make none)."""
        if self.run_id is None:
            from fmkit.tracking.store import log_batches

            tags = {"fmkit.kind": "live", "fmkit.stage": self.stage}
            if self.bundle_dir is not None:
                tags["fmkit.out"] = str(self.bundle_dir.resolve())
            run = self._client.create_run(self._experiment, run_name=self.run_name, tags=tags)
            self.run_id = run.info.run_id
            atexit.register(self._at_exit)
            log_batches(self._client, self.run_id, params=flatten_params(self.config))
        return self.run_id

    def _point(self, step: int, loss: float, learning_rate: float) -> None:
        self._logged_step = step
        self._pending += [("train.loss", float(loss), step), ("train.learning_rate", float(learning_rate), step)]

    def _catch_up(self, step) -> None:
        """The last step seen, if throttling skipped it: each evaluation and the end have their loss point."""
        if self._last_step is not None and self._last_step[0] == step and self._logged_step != step:
            self._point(*self._last_step)

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending or self._client is None:
            return
        from fmkit.tracking.store import log_batches, now_ms

        timestamp = now_ms()
        rows = [(key, value, step, timestamp) for key, value, step in self._pending if value == value]  # no NaN
        self._pending = []
        self._guard(lambda: log_batches(self._client, self._run(), metrics=rows))

    def _guard(self, action) -> None:
        """Run an MLflow call; on its first failure warn and stop tracking (the training goes on)."""
        if self._broken or self._client is None:
            return
        try:
            action()
        except Exception as error:  # MlflowException, a dropped connection, a full disk: none may stop training
            self._broken = True
            warnings.warn(f"MLflow tracking to {self.uri} stopped: {type(error).__name__}: {error}; training "
                          "continues, `fmkit runs export` can record the bundle afterwards", RuntimeWarning,
                          stacklevel=2)
