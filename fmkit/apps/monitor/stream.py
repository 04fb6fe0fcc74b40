"""The loop between a source and the monitor: read what is there, ingest it as one micro-batch, repeat.

Replay reads its input once, as fast as it can, and computes the series and alerts at the end; run
follows its input until SIGINT/SIGTERM (or the end of stdin), stores each micro-batch as soon as it is
read, and recomputes the series and alerts whenever the input goes quiet (at most every
``refresh_seconds`` while it does not). Stopping between batches loses nothing; a kill -9 mid-batch
loses only that uncommitted batch, which the restarted monitor reads again.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from fmkit.apps.monitor.engine import Monitor
from fmkit.apps.monitor.sources import StdinSource

REPLAY_READ = 1024  # lines per read in replay; the engine still scores them batch_size at a time


def consume(monitor: Monitor, source, *, follow: bool, stop: threading.Event | None = None) -> None:
    """Feed ``source`` to ``monitor`` until it is exhausted (replay, end of stdin) or ``stop`` is set."""
    stop = stop or threading.Event()
    poll = monitor.cfg.poll_seconds
    read_size = max(monitor.cfg.batch_size, REPLAY_READ) if not follow else monitor.cfg.batch_size
    while not stop.is_set():
        lines = source.read(read_size, wait=poll) if isinstance(source, StdinSource) else source.read(read_size)
        if lines:
            monitor.ingest_lines(lines, refresh=follow)
            continue
        if source.exhausted:
            break
        if follow:
            monitor.refresh()  # idle: bring series and alerts up to date
            monitor.write_manifest()
            if not isinstance(source, StdinSource):
                stop.wait(poll)
    source.close()


@contextmanager
def stop_on_signals():
    """An Event set by SIGINT or SIGTERM (a clean stop between batches); the old handlers come back after."""
    stop = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
