"""Run the server: one process, or ``--workers N`` uvicorn worker processes sharing one listening socket.

With several workers uvicorn's supervisor spawns fresh interpreters (no fork of a process holding models or
database connections), so each worker must rebuild the app itself: the parent passes the ServeConfig it
validated as JSON in ``$FMKIT_SERVE_CONFIG`` (data, never a pickle) and uvicorn calls
``app_from_environment`` in every worker. What each worker then holds is its own: models and their
micro-batchers, rate-limit buckets, metrics, drift windows, monitors' refresh timers, the key cache. What
they share is the key store (fmkit/store): keys, revocations and the audit log. docs/serve_scale.md.

The supervisor restarts a worker that dies, stops them all on SIGTERM/SIGINT (each answers its requests in
flight), and on SIGHUP replaces them one by one (bundles re-read from disk).
"""

from __future__ import annotations

import os
import sys

from fmkit.errors import FmkitError
from fmkit.serve.config import ServeConfig

CONFIG_VARIABLE = "FMKIT_SERVE_CONFIG"
HEALTHCHECK_S = 20  # a worker whose supervisor ping goes unanswered this long is replaced (loading is not hanging)


def app_from_environment():
    """uvicorn's app factory, called in each worker: the parent's validated config, rebuilt from JSON."""
    from fmkit.serve.app import create_app

    text = os.environ.get(CONFIG_VARIABLE)
    if not text:
        raise RuntimeError(f"${CONFIG_VARIABLE} is not set: start workers with `fmkit serve --workers N`")
    return create_app(ServeConfig.model_validate_json(text))


def uvicorn_options(config: ServeConfig) -> dict:
    return {"host": config.host, "port": config.port, "log_level": "warning", "timeout_graceful_shutdown": 30}


def serve(config: ServeConfig) -> int:
    """Serve until stopped; returns the exit status (1 when a worker could not start)."""
    import uvicorn

    if config.workers == 1:
        from fmkit.serve.app import create_app

        uvicorn.run(create_app(config), **uvicorn_options(config))
        return 0
    warn_about_cores(config.workers)
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    os.environ[CONFIG_VARIABLE] = config.model_dump_json()  # inherited by the spawned workers
    settings = uvicorn.Config(f"{__name__}:app_from_environment", factory=True, workers=config.workers,
                              timeout_worker_healthcheck=HEALTHCHECK_S, **uvicorn_options(config))
    listener = settings.bind_socket()  # bound once here: a port in use fails before any worker starts
    supervisor = Multiprocess(settings, sockets=[listener])
    try:
        supervisor.run()
    finally:
        listener.close()
    failed = [process.pid for process in getattr(supervisor, "processes", [])
              if getattr(process, "exitcode", None) == STARTUP_FAILURE]
    if failed:
        which = (f"worker process {failed[0]} could not start (its error is above)" if len(failed) == 1 else
                 f"worker processes {', '.join(map(str, failed))} could not start (their errors are above)")
        raise WorkerFailed(f"{which}, so the server stopped; fix that and start again")
    return 0


class WorkerFailed(FmkitError):
    exit_code = 1


def warn_about_cores(workers: int) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers > cores:
        print(f"fmkit serve: warning: --workers {workers} on {cores} core(s): each worker loads every model (memory "
              f"x{workers}) and they share the {cores} core(s), so workers beyond the cores add memory and "
              "contention, not throughput", file=sys.stderr)
