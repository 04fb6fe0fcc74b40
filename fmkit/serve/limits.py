"""Per-key token-bucket rate limiting and the request body size limit."""

from __future__ import annotations

import time


class TokenBuckets:
    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> float:
        """0 when allowed; otherwise the seconds until a token is available."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over ``limit`` bytes (413), declared or streamed. A plain ASGI middleware:
    Starlette's BaseHTTPMiddleware would add a task and stream copies to every request.
    ``respond(scope, status, code, message, limit)`` makes the response (and its audit row)."""

    def __init__(self, app, limit: int, respond):
        self.app, self.limit, self.respond = app, limit, respond

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send, f"request body is {int(declared)} bytes")
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send, f"request body exceeds {self.limit} bytes")

    async def _refuse(self, scope, receive, send, what: str):
        response = self.respond(scope, 413, "body_too_large", f"{what}; the limit is {self.limit}", "max_body_bytes")
        await response(scope, receive, send)
