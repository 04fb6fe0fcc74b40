"""Who is calling and what they may do (API keys, roles, allowlists, rate limits), and the audit log.

The routes that take a body are listed in ``ACCESS`` so a request whose body is malformed is
still authenticated first: an unauthenticated caller learns 401, never how the body is checked.
"""

from __future__ import annotations

import logging
import re
import time

from fmkit.serve.errors import ApiError

log = logging.getLogger("fmkit.serve")

ADMIN = ("admin",)
PREDICT = ("admin", "predict")
READ = ("admin", "predict", "read")
# endpoint function name -> roles that may call it
ACCESS = {"predict": PREDICT, "explain": PREDICT, "card": READ, "list_models": READ, "metrics": ("admin", "read"),
          "load": ADMIN, "unload": ADMIN, "create_key": ADMIN, "revoke_key": ADMIN}
_MODEL_ROUTE = re.compile(r"/v1/models/(?P<name>[^/]+?)(?::(?P<action>\w+)|/(?P<card>card))?")


def audit_target(path: str) -> tuple[str, str | None]:
    """(endpoint, model) of a request path, for audit rows written before routing (a 413) or after it failed."""
    match = _MODEL_ROUTE.fullmatch(path)
    if match:
        return match["action"] or match["card"] or "models", match["name"][:200]
    if path.startswith("/v1/keys"):
        return "keys", None
    return path[:200], None


def _logged(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # SQLite refuses lone surrogates


class Access:
    def __init__(self, state, config):
        self.state, self.config = state, config

    def identify(self, headers):
        """The caller's key (None when auth is off); 401 when there is none or it is unknown/revoked."""
        if not self.config.auth:
            return None
        header = headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ApiError(401, "unauthorized", "send `Authorization: Bearer <key>` (make one with `fmkit keys create`)",
                           headers={"WWW-Authenticate": "Bearer"})
        from fmkit.serve.keys import StoreUnavailable

        try:
            key = self.state.keys.verify(header[7:].strip())
        except StoreUnavailable as error:  # fail closed: no request on a key that could not be checked
            log.warning("%s", error)
            raise ApiError(503, "store_unavailable", "the key store did not answer; retry shortly",
                           headers={"Retry-After": "2"}) from None
        if key is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        return key

    def authorize(self, request, roles, model: str | None = None):
        key = self.identify(request.headers)
        if key is None:
            return None
        if key.role not in roles:
            raise ApiError(403, "forbidden", f"role {key.role!r} may not do this; needs one of {', '.join(roles)}")
        if model is not None and not key.may_use(model):
            raise ApiError(403, "forbidden", f"this key may not use model {model!r}")
        wait = self.state.buckets.take(key.id)
        if wait:
            raise ApiError(429, "rate_limited", f"rate limit of {self.config.rate_per_second}/s exceeded",
                           "rate_per_second", headers={"Retry-After": str(max(1, round(wait)))})
        return key

    def authorize_route(self, request):
        """Authorize a request by the route it matched (when its body failed to parse); its key or None."""
        endpoint = getattr(request.scope.get("endpoint"), "__name__", None)
        roles = ACCESS.get(endpoint)
        if roles is None:
            return None
        _, model = audit_target(request.url.path)
        return self.authorize(request, roles, model if endpoint in ("predict", "explain", "card") else None)

    def key_or_none(self, headers):
        try:
            return self.identify(headers)
        except ApiError:
            return None

    @staticmethod
    def sees_paths(key) -> bool:
        """Server paths are for admins (and for a server without keys, which anyone may administer)."""
        return key is None or key.role == "admin"

    def audit(self, key, endpoint: str, model: str | None, count: int | None, status: int, started: float,
              logged: list[str] | None = None) -> None:
        from fmkit.bundle.manifest import utc_now

        self.state.audit.append((
            utc_now(), key.id if key else None, endpoint, _logged(model) if model else None, count, status,
            round((time.perf_counter() - started) * 1000, 3),
            _logged("\n".join(logged)) if logged and self.config.log_inputs else None))
