"""Drift watch on served models (``fmkit serve --watch``): is today's traffic still like the test split?

Every prediction the server makes is observed where it is made: the runtime's ``forward`` is wrapped
(any backend: the logits -> probabilities) and, on PyTorch, a hook on the output layer captures the
features it reads (fmkit/evaluate/reference.py), in the same forward pass, so watching costs no model
call. The last ``watch_window`` rows of each are compared with the bundle's drift reference:

- prediction shift: PSI of the predicted-label shares (alert at ``watch_psi``, default 0.25: "major"),
- confidence: the drop of the mean top probability (alert at ``watch_confidence_drop``),
- input drift: kernel MMD between window and reference features, permutation p-value (alert below
  ``watch_alpha``); ONNX bundles expose no features, so they get the first two only.

A check runs every ``watch_every`` new rows once ``watch_min_rows`` are in, on its own thread (never on
the request path); its figures are Prometheus gauges and GET /v1/models/NAME/drift computes a fresh one.
A signal that starts drifting raises one alert through the monitor's alert sinks (alerts.jsonl in
``WORKSPACE/.fmkit/drift/NAME/`` and the ``--watch-webhook``); it re-arms once the signal is back below
its threshold, so a lasting shift is one alert, not one per check.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger("fmkit.serve.drift")
SIGNALS = ("prediction", "confidence", "input")


class DriftMetrics:
    """The watch's Prometheus series, beside the server's own (one registry)."""

    def __init__(self, registry):
        from prometheus_client import Counter, Gauge

        self.psi = Gauge("fmkit_drift_psi", "PSI of the predicted-label shares: window vs test split", ["model"],
                         registry=registry)
        self.confidence_drop = Gauge("fmkit_drift_confidence_drop", "mean top probability on the test split minus "
                                     "on the window", ["model"], registry=registry)
        self.input_p_value = Gauge("fmkit_drift_input_p_value", "MMD permutation p-value of the window's features "
                                   "vs the test split's", ["model"], registry=registry)
        self.input_mmd2 = Gauge("fmkit_drift_input_mmd2", "squared kernel MMD of the window's features vs the test "
                                "split's", ["model"], registry=registry)
        self.window_rows = Gauge("fmkit_drift_window_rows", "served rows in the drift window", ["model"],
                                 registry=registry)
        self.drifting = Gauge("fmkit_drift_drifting", "1 while a signal is past its threshold", ["model", "signal"],
                              registry=registry)
        self.alerts = Counter("fmkit_drift_alerts_total", "drift alerts raised", ["model", "signal"],
                              registry=registry)


class DriftWatch:
    """The rolling windows of one served model and the checks over them (thread-safe)."""

    def __init__(self, name: str, reference, config, *, sinks=None, metrics: DriftMetrics | None = None,
                 digest: str = ""):
        self.name, self.reference, self.config = name, reference, config
        self.sinks, self.metrics, self.digest = sinks, metrics, digest
        self.probabilities: deque = deque(maxlen=config.watch_window)
        self.features: deque = deque(maxlen=config.watch_window)
        self.lock = threading.Lock()  # the windows: filled on the batcher's thread, read by checks
        self.check_lock = threading.Lock()  # one check at a time: the alert state moves once per check
        self.seen = self.since_check = 0
        self.drifting = dict.fromkeys(SIGNALS, False)
        self.alerts_raised = 0
        self.last: dict | None = None
        reference_features = reference.features
        if reference_features is not None and len(reference_features) > config.watch_window:
            keep = np.random.default_rng(0).choice(len(reference_features), config.watch_window, replace=False)
            reference_features = reference_features[np.sort(keep)]  # the same sample at every check
        self.reference_features = reference_features
        self.reference_shares = self._shares(reference.probabilities)

    def _shares(self, probabilities: np.ndarray) -> np.ndarray:
        from fmkit.evaluate.drift import label_shares

        return label_shares(probabilities, len(self.reference.labels))

    # -- observing (the batcher's thread) ---------------------------------------------------
    def observe(self, probabilities: np.ndarray) -> bool:
        """Add served rows; True when a check is due."""
        with self.lock:
            self.probabilities.extend(np.asarray(probabilities, dtype=np.float32))
            self.seen += len(probabilities)
            self.since_check += len(probabilities)
            return self.since_check >= self.config.watch_every and len(self.probabilities) >= self.config.watch_min_rows

    def observe_features(self, features: np.ndarray) -> None:
        with self.lock:
            self.features.extend(features)

    # -- checking --------------------------------------------------------------------------
    def report(self) -> dict:
        """The drift figures of the current window (``status: warming up`` below ``watch_min_rows``)."""
        from fmkit.evaluate.drift import mean_confidence_drop, mmd_permutation_test, population_stability_index

        with self.lock:
            probabilities = np.array(self.probabilities)
            features = np.array(self.features) if self.features else None
            seen = self.seen
            self.since_check = 0
        cfg, labels = self.config, self.reference.labels
        body = {"model": self.name, "window_rows": len(probabilities), "served_rows": seen,
                "window": cfg.watch_window, "min_rows": cfg.watch_min_rows,
                "reference": {key: self.reference.record.get(key) for key in
                              ("split", "rows", "feature_rows", "mean_confidence", "label_shares", "created_at")}}
        if len(probabilities) < cfg.watch_min_rows:
            return body | {"status": "warming up", "drifting": [],
                           "message": f"{len(probabilities)} of {cfg.watch_min_rows} rows needed for a check"}
        shares = self._shares(probabilities)
        psi = population_stability_index(self.reference_shares, shares)
        drop = mean_confidence_drop(self.reference.probabilities, probabilities)
        body["prediction"] = {"label_shares": {label: round(float(s), 6) for label, s in zip(labels, shares)},
                              "psi": round(psi, 6), "threshold": cfg.watch_psi, "drifting": psi >= cfg.watch_psi}
        body["confidence"] = {"mean": round(float(probabilities.max(axis=1).mean()), 6),
                              "reference_mean": round(float(self.reference.probabilities.max(axis=1).mean()), 6),
                              "drop": round(drop, 6), "threshold": cfg.watch_confidence_drop,
                              "drifting": drop >= cfg.watch_confidence_drop}
        body["input"] = self._input_drift(features, mmd_permutation_test)
        drifting = [signal for signal in SIGNALS if body[signal].get("drifting")]
        return body | {"status": "drifting" if drifting else "ok", "drifting": drifting}

    def _input_drift(self, features, test) -> dict:
        cfg = self.config
        if self.reference_features is None:
            return {"available": False, "drifting": False, "reason": "this bundle's runtime exposes no features "
                    "(ONNX); serve its PyTorch parent to watch input drift"}
        if features is None or len(features) < cfg.watch_min_rows:
            return {"available": False, "drifting": False, "reason": "too few feature rows in the window yet"}
        result = test(self.reference_features, features, permutations=cfg.watch_permutations)
        return {"available": True, "test": "mmd-rbf-permutation", "mmd2": round(result.mmd2, 8),
                "p_value": round(result.p_value, 6), "alpha": cfg.watch_alpha, "bandwidth": round(result.bandwidth, 6),
                "permutations": result.permutations, "reference_rows": result.reference_rows,
                "window_rows": result.window_rows, "drifting": result.p_value < cfg.watch_alpha}

    def check(self) -> dict:
        """A report, its gauges, and one alert per signal that has just started drifting."""
        with self.check_lock:
            return self._check()

    def _check(self) -> dict:
        from fmkit.bundle.manifest import utc_now

        body = self.report()
        self.last = body
        if body["status"] == "warming up":
            return body
        metrics = self.metrics
        if metrics is not None:
            metrics.window_rows.labels(self.name).set(body["window_rows"])
            metrics.psi.labels(self.name).set(body["prediction"]["psi"])
            metrics.confidence_drop.labels(self.name).set(body["confidence"]["drop"])
            if body["input"].get("available"):
                metrics.input_p_value.labels(self.name).set(body["input"]["p_value"])
                metrics.input_mmd2.labels(self.name).set(body["input"]["mmd2"])
        alerts, now = [], utc_now()
        for signal in SIGNALS:
            drifting = bool(body[signal].get("drifting"))
            if metrics is not None:
                metrics.drifting.labels(self.name, signal).set(int(drifting))
            if drifting and not self.drifting[signal]:
                alerts.append(self._alert(signal, body, now))
            self.drifting[signal] = drifting
        if alerts:
            self.alerts_raised += len(alerts)
            for alert in alerts:
                if metrics is not None:
                    metrics.alerts.labels(self.name, alert["signal"]).inc()
                log.warning("drift on %s: %s %s=%s (threshold %s)", self.name, alert["signal"], alert["metric"],
                            alert["value"], alert["threshold"])
            if self.sinks is not None:
                self.sinks.emit(alerts)  # never raises: a down webhook is retried, then recorded
        return body

    def _alert(self, signal: str, body: dict, now: str) -> dict:
        figures = body[signal]
        metric, value, threshold = {
            "prediction": ("psi", figures.get("psi"), figures.get("threshold")),
            "confidence": ("confidence_drop", figures.get("drop"), figures.get("threshold")),
            "input": ("mmd_p_value", figures.get("p_value"), figures.get("alpha")),
        }[signal]
        return {"kind": "drift", "model": self.name, "topic": f"model:{self.name}", "signal": signal,
                "metric": metric, "value": value, "threshold": threshold, "score": value, "start": now, "end": now,
                "window_rows": body["window_rows"], "served_rows": body["served_rows"],
                "bundle_digest": self.digest, "figures": figures}


def observe_runtime(runtime, watch: DriftWatch, due) -> object | None:
    """Feed every forward of ``runtime`` to ``watch`` (probabilities; features on PyTorch); ``due()`` when a check
    is due. Returns the features hook (``.remove()``), or None on a runtime without one."""
    from fmkit.evaluate.reference import attach_feature_hook
    from fmkit.runtime.base import softmax

    hook = attach_feature_hook(runtime, watch.observe_features) if watch.reference.features is not None else None
    original = runtime.forward

    def watched_forward(feed):
        logits = original(feed)
        if np.isfinite(logits).all() and watch.observe(softmax(logits)):  # non-finite: the runtime refuses it
            due()
        return logits

    runtime.forward = watched_forward  # this instance only; the batcher calls it for every served batch
    return hook


class DriftHost:
    """The watches of a server: attaches one to every served model that carries a reference, re-attaches
    when an admin :load replaces a model, and runs the checks on one worker thread."""

    def __init__(self, server):
        self.server, self.config = server, server.config
        self.watches: dict[str, DriftWatch] = {}
        self.problems: dict[str, str] = {}  # model -> why it is not watched
        self._watched_runtimes: dict[str, object] = {}  # the runtime object itself: an id() can be reused
        self._hooks: dict[str, object] = {}
        self.metrics = DriftMetrics(server.state.metrics.registry) if self.config.watch else None
        self._checks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fmkit-drift")
        self._pending: set[str] = set()
        self._task = None

    def sync(self) -> None:
        """Watch what is served now: new or replaced models get a fresh watch, unloaded ones lose theirs."""
        if not self.config.watch:
            return
        models = self.server.state.models
        for name in list(self.watches) + list(self.problems):
            if name not in models:
                self._drop(name)
        for name, slot in models.items():
            if self._watched_runtimes.get(name) is not slot.runtime:
                self._drop(name)
                self._attach(name, slot)

    def _drop(self, name: str) -> None:
        hook = self._hooks.pop(name, None)
        if hook is not None:
            hook.remove()  # the features hook; the replaced runtime (and its wrapped forward) is gone with it
        self.watches.pop(name, None)
        self.problems.pop(name, None)
        self._watched_runtimes.pop(name, None)

    def _attach(self, name: str, slot) -> None:
        from fmkit.apps.monitor.sinks import AlertSinks, WebhookConfig
        from fmkit.errors import BadInputError, BundleIntegrityError
        from fmkit.evaluate.reference import read_reference

        runtime = slot.runtime
        self._watched_runtimes[name] = runtime
        try:
            reference = read_reference(slot.path, runtime.manifest)
        except (BadInputError, BundleIntegrityError) as error:
            self.problems[name] = str(error).replace(str(slot.path), name)
            log.warning("not watching %s: %s", name, error)
            return
        if list(reference.labels) != list(runtime.labels):
            self.problems[name] = f"the drift reference's labels {reference.labels} are not the model's"
            return
        sinks = AlertSinks(Path(self.config.workspace) / ".fmkit" / "drift" / name,
                           WebhookConfig(url=self.config.watch_webhook), log=log.warning)
        watch = DriftWatch(name, reference, self.config, sinks=sinks, metrics=self.metrics,
                           digest=runtime.manifest.content_digest)
        self.watches[name] = watch
        self._hooks[name] = observe_runtime(runtime, watch, lambda: self._schedule(name, watch))

    def _schedule(self, name: str, watch: DriftWatch) -> None:
        if name in self._pending:
            return
        self._pending.add(name)

        def run():
            try:
                watch.check()
            except Exception:  # a failing check must not stop serving
                log.exception("drift check of %s failed", name)
            finally:
                self._pending.discard(name)

        self._checks.submit(run)

    async def start(self) -> None:
        if not self.config.watch:
            return
        self.sync()

        async def keep_in_sync():
            while True:
                await asyncio.sleep(1.0)
                self.sync()

        self._task = asyncio.get_running_loop().create_task(keep_in_sync())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self._checks.shutdown)

    async def report(self, name: str) -> dict:
        """A fresh report (and check) for ``name``, off the event loop."""
        self.sync()
        watch = self.watches[name]
        return await asyncio.get_running_loop().run_in_executor(None, watch.check)
