"""Dynamic micro-batching: requests wait up to ``max_wait_ms`` to share one forward pass.

The queue is bounded (a full queue answers 503 with Retry-After, memory never grows without
bound), the model runs on one worker thread so the event loop stays free, and ``close``
finishes every request already accepted (graceful shutdown, model reloads without drops).

One request must never fail another: inputs are validated before they are queued, and if a
shared forward pass still fails, its requests are re-run one at a time so only the request that
caused it learns the error. A request whose probabilities are not finite gets an error, not rows.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fmkit.errors import NonFiniteOutputError  # the runtimes raise it on NaN/inf logits; checked here too


class QueueFullError(Exception):
    pass


def join_lists(parts: list) -> list:
    return [item for part in parts for item in part]


class MicroBatcher:
    """``join`` makes one model input from several requests' inputs: list concatenation for
    texts, ``np.concatenate`` for image arrays (see fmkit.serve.inputs)."""

    def __init__(self, runtime, *, max_batch: int = 32, max_wait_ms: float = 5.0, queue_size: int = 256,
                 observe_batch=None, join=join_lists):
        self.runtime = runtime
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.join = join
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fmkit-model")
        self.observe_batch = observe_batch or (lambda size, seconds: None)
        self._worker: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def submit(self, inputs):
        """Probabilities for ``inputs`` (rows in order), computed in a shared batch."""
        if self._closing:
            raise QueueFullError("shutting down")
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((inputs, future))
        except asyncio.QueueFull:
            raise QueueFullError("queue full") from None
        return await future

    def _drain(self, batch: list, count: int) -> tuple[int, bool]:
        """Move waiting requests into ``batch`` up to ``max_batch`` inputs; True if the stop sentinel came."""
        while count < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                return count, True
            batch.append(item)
            count += len(item[0])
        return count, False

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            batch = [item]
            # Whatever queued while the model was busy joins at once; when the batch is still small,
            # wait one window for more (a single sleep: no per-item timers on the hot path).
            count, stop = self._drain(batch, len(item[0]))
            if not stop and count < self.max_batch and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)
                count, stop = self._drain(batch, count)
            await self._answer(batch)
            if stop:
                return

    async def _predict(self, inputs):
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        probabilities = await loop.run_in_executor(self.executor, self.runtime.predict_proba, inputs)
        self.observe_batch(len(inputs), time.perf_counter() - started)
        return probabilities

    async def _answer(self, batch: list) -> None:
        live = [(request, future) for request, future in batch if not future.done()]  # timed-out ones have gone
        if not live:
            return
        try:
            probabilities = await self._predict(self.join([request for request, _ in live]))
        except Exception as error:
            if len(live) == 1:
                _settle(live[0][1], error=error)
                return
            # One request may have broken the shared pass: re-run each alone, so only it fails.
            for request, future in live:
                if future.done():
                    continue
                try:
                    _settle(future, await self._predict(request))
                except Exception as single_error:
                    _settle(future, error=single_error)
            return
        offset = 0
        for request, future in live:
            _settle(future, probabilities[offset:offset + len(request)])
            offset += len(request)

    async def close(self) -> None:
        """Stop accepting, finish everything already queued, then stop the worker."""
        self._closing = True
        if self._worker is not None:
            await self.queue.put(None)
            await self._worker
        self.executor.shutdown(wait=True)


def _settle(future: asyncio.Future, rows=None, error: Exception | None = None) -> None:
    if future.done():
        return
    if error is None and not np.isfinite(np.asarray(rows, dtype=np.float64)).all():
        error = NonFiniteOutputError("the model's probabilities are not finite (NaN or infinite)")
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(rows)
