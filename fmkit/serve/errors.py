"""HTTP errors: one body shape, ``{"error": {"code", "message", "limit"?}}``, safe for any message."""

from __future__ import annotations

MAX_MESSAGE_CHARS = 2000


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, limit: str | None = None, headers=None,
                 audited: bool = False):
        self.status, self.code, self.message, self.limit, self.headers = status, code, message, limit, headers or {}
        self.audited = audited  # True once an endpoint wrote its audit row


def printable(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as valid UTF-8, at most ``limit`` characters: a message may quote the request (a
    field name, a model name), and a lone surrogate there would make the JSON encoder fail (a 500)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…"


def error_response(status: int, code: str, message: str, limit: str | None = None, headers=None):
    from fastapi.responses import JSONResponse

    body = {"error": {"code": code, "message": printable(message)}}
    if limit:
        body["error"]["limit"] = limit
    return JSONResponse(body, status_code=status, headers=headers)
