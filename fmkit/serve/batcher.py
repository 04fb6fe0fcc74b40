"""Dynamic micro-batching: requests wait up to ``max_wait_ms`` to share one forward pass.

The queue is bounded (a full queue answers 503 with Retry-After, memory never grows without
bound), the model runs on one worker thread so the event loop stays free, and ``close``
finishes every request already accepted (graceful shutdown, model reloads without drops).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor


class QueueFullError(Exception):
    pass


class MicroBatcher:
    def __init__(self, runtime, *, max_batch: int = 32, max_wait_ms: float = 5.0, queue_size: int = 256,
                 observe_batch=None):
        self.runtime = runtime
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
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

    async def submit(self, texts: list[str]):
        """Probabilities for ``texts`` (rows in order), computed in a shared batch."""
        if self._closing:
            raise QueueFullError("shutting down")
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((texts, future))
        except asyncio.QueueFull:
            raise QueueFullError("queue full") from None
        return await future

    def _drain(self, batch: list, count: int) -> tuple[int, bool]:
        """Move waiting requests into ``batch`` up to ``max_batch`` texts; True if the stop sentinel came."""
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
        loop = asyncio.get_running_loop()
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
            texts = [text for request, _ in batch for text in request]
            started = time.perf_counter()
            try:
                probabilities = await loop.run_in_executor(self.executor, self.runtime.predict_proba, texts)
            except Exception as error:  # the model failed: every waiting request learns it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
            else:
                self.observe_batch(len(texts), time.perf_counter() - started)
                offset = 0
                for request, future in batch:
                    if not future.done():  # a request that timed out has gone away
                        future.set_result(probabilities[offset:offset + len(request)])
                    offset += len(request)
            if stop:
                return

    async def close(self) -> None:
        """Stop accepting, finish everything already queued, then stop the worker."""
        self._closing = True
        if self._worker is not None:
            await self.queue.put(None)
            await self._worker
        self.executor.shutdown(wait=True)
