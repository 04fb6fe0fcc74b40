"""What the route groups share: the server's state and settings, access control, the model lookup,
the per-request metrics and audit row, and the model call that turns every failure into an ApiError."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

from fmkit.serve.access import Access
from fmkit.serve.config import ServeConfig
from fmkit.serve.errors import ApiError
from fmkit.serve.schemas import ErrorResponse

log = logging.getLogger("fmkit.serve")
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 422, 429, 500, 503, 504)}
# An HTML route's errors are still JSON: say so, or FastAPI documents them under text/html.
JSON_ERRORS = {status: {"description": "error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}} for status in ERRORS}


@dataclass
class Server:
    state: object  # the ServerState: loaded models, keys, metrics, pending audit rows
    config: ServeConfig
    access: Access

    def slot_for(self, name: str, key=None):
        slot = self.state.models.get(name)
        if slot is None:
            visible = sorted(n for n in self.state.models if key is None or key.may_use(n))
            raise ApiError(404, "unknown_model", f"no model {name!r}; served: {', '.join(visible) or 'none'}")
        return slot

    @contextmanager
    def observed(self, endpoint: str, name: str, count: int, logged: list[str]):
        """Metrics and the audit row of one model request, whatever its outcome; the caller sets ``key``."""
        record = {"key": None, "status": 500}
        started = time.perf_counter()
        try:
            yield record
            record["status"] = 200
        except ApiError as error:
            record["status"], error.audited = error.status, True
            raise
        finally:
            self.state.metrics.requests.labels(endpoint, name, str(record["status"])).inc()
            self.state.metrics.latency.labels(endpoint, name).observe(time.perf_counter() - started)
            self.access.audit(record["key"], endpoint, name, count, record["status"], started, logged)

    async def run_model(self, slot, inputs):
        """Probabilities from the slot's batcher; every failure becomes an ApiError naming no server path."""
        from fmkit.errors import BadInputError, NonFiniteOutputError
        from fmkit.serve.batcher import QueueFullError

        timeout = self.config.request_timeout_s
        try:
            return await asyncio.wait_for(slot.batcher.submit(inputs), timeout)
        except QueueFullError:
            raise ApiError(503, "overloaded", "the queue is full; retry shortly", "queue_size",
                           headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"no answer within {timeout} s", "request_timeout_s") from None
        except BadInputError as error:
            raise ApiError(422, "bad_input", str(error).replace(str(slot.path), slot.name)) from None
        except NonFiniteOutputError as error:
            log.error("model %s (%s): %s", slot.name, slot.path, error)
            raise ApiError(500, "model_failed", f"model {slot.name!r} answered non-finite probabilities for this "
                           "request; its weights may be damaged (an admin can check them with `fmkit info`)") from None
        except Exception:
            log.exception("model %s (%s) failed on a request", slot.name, slot.path)
            raise ApiError(500, "model_failed", f"model {slot.name!r} failed on this request; the server log "
                           "has the details") from None


async def run_in_turn(slot, function, timeout: float):
    """``function()`` on a worker thread, one call per slot at a time (``slot.lock``), answered within ``timeout`` s.

    A call that times out answers its request (``asyncio.TimeoutError``) but keeps the slot's lock and its place
    in ``slot.waiting`` until its thread really ends, so ``queue_size`` bounds the work in flight, not only the
    requests still waiting for an answer, and a timed-out call never runs beside the next one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    slot.waiting += 1
    try:
        await asyncio.wait_for(slot.lock.acquire(), timeout)
    except BaseException:  # timed out (or the client left) while waiting for its turn
        slot.waiting -= 1
        raise
    try:
        future = loop.run_in_executor(None, function)
    except BaseException:
        slot.lock.release()
        slot.waiting -= 1
        raise

    def finished(_):
        slot.lock.release()
        slot.waiting -= 1

    future.add_done_callback(finished)
    return await asyncio.wait_for(asyncio.shield(future), max(deadline - loop.time(), 0.001))
