"""API keys: 32 random bytes shown once, stored only as a salted hash, checked in constant time.

A key reads ``fmk_<id>_<secret>``: the id is public (it names the key in lists and the audit
log), the secret is 32 random bytes. Being high-entropy, a key needs no slow password hash: a
salted HMAC-SHA256 resists every offline attack that matters and keeps per-request cost tiny.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fmkit.errors import BadInputError
from fmkit.sqlite import connect

ROLES = ("admin", "predict", "read")
PREFIX = "fmk"
ALL_MODELS = "*"
NO_MODELS = "a key needs the models it may use: pass --models NAME[,NAME] (API: \"models\": [\"NAME\"]), or '*' for all"

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash TEXT NOT NULL, role TEXT NOT NULL,
  models TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT, note TEXT
);
CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY, time TEXT NOT NULL, key_id TEXT, endpoint TEXT NOT NULL, model TEXT,
  texts INTEGER, status INTEGER NOT NULL, latency_ms REAL, input TEXT
);
"""


@dataclass(frozen=True)
class ApiKey:
    id: str
    role: str
    models: tuple[str, ...]  # ("*",) = every model
    created: str
    revoked: str | None = None
    note: str | None = None

    def may_use(self, model: str) -> bool:
        return self.role == "admin" or "*" in self.models or model in self.models


def check_allowlist(models: list[str]) -> list[str]:
    """The model allowlist of a new key: names, or "*" for all. Empty is an error, never "all"."""
    from fmkit.serve.config import model_name_problem

    blank = [index for index, name in enumerate(models) if not isinstance(name, str) or not name.strip()]
    if len(blank) == len(models):
        raise BadInputError(f"empty model list: {NO_MODELS}")
    if blank:
        raise BadInputError(f"model names at positions {blank} are blank: {NO_MODELS}")
    problems = [problem for name in models if name != ALL_MODELS and (problem := model_name_problem(name))]
    if problems:
        raise BadInputError("; ".join(problems))
    return list(dict.fromkeys(models))  # in order, without repeats


def _private(path: Path) -> None:
    """The database (key hashes, the audit log, texts under --log-inputs) is readable by its owner
    only; SQLite gives its journal and -wal/-shm files the same mode."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in ("-journal", "-wal", "-shm"))):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


class KeyStore:
    """Keys and the audit log in SQLite. ``verify`` caches key rows for ``cache_seconds`` so a busy
    server does not open the database per request; a revocation takes effect within that time."""

    def __init__(self, workspace: Path, cache_seconds: float = 2.0):
        self.cache_seconds = cache_seconds
        self._rows: dict[str, tuple[float, object]] = {}  # key id -> (read at, row or None)
        self.path = Path(workspace) / ".fmkit" / "serve.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _private(self.path)
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self):
        return connect(self.path)

    def create(self, role: str, models: list[str] | None = None, note: str | None = None) -> tuple[str, ApiKey]:
        """Make a key; returns (the full key, shown this once; its record)."""
        from fmkit.bundle.manifest import utc_now

        if role not in ROLES:
            raise BadInputError(f"role {role!r} is unknown; use one of {', '.join(ROLES)}")
        models = check_allowlist([ALL_MODELS] if models is None else models)
        key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
        record = ApiKey(key_id, role, tuple(models), utc_now(), None, note)
        with self._connect() as db:
            db.execute("INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?)",
                       (key_id, salt, _digest(salt, secret), role, json.dumps(models), record.created, None, note))
        return f"{PREFIX}_{key_id}_{secret}", record

    def verify(self, token: str) -> ApiKey | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        _, key_id, secret = parts
        row = self._row(key_id)
        if row is None:
            _digest(b"0" * 16, secret)  # same work whether or not the id exists
            return None
        if not hmac.compare_digest(_digest(row["salt"], secret), row["hash"]) or row["revoked"]:
            return None
        return self._record(row)

    def _row(self, key_id: str):
        cached = self._rows.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        with self._connect() as db:
            row = db.execute("SELECT * FROM api_keys WHERE id=?", (key_id,)).fetchone()
        if len(self._rows) > 10_000:  # unknown ids from a scan must not grow memory without bound
            self._rows.clear()
        self._rows[key_id] = (time.monotonic(), row)
        return row

    def list(self) -> list[ApiKey]:
        with self._connect() as db:
            return [self._record(r) for r in db.execute("SELECT * FROM api_keys ORDER BY created")]

    def revoke(self, key_id: str) -> ApiKey:
        from fmkit.bundle.manifest import utc_now

        with self._connect() as db:
            changed = db.execute("UPDATE api_keys SET revoked=? WHERE id=? AND revoked IS NULL",
                                 (utc_now(), key_id)).rowcount
        self._rows.pop(key_id, None)
        if not changed:
            known = [k.id for k in self.list() if not k.revoked]
            raise BadInputError(f"no active key {key_id!r}; active keys: {', '.join(known) or 'none'}")
        return next(k for k in self.list() if k.id == key_id)

    def write_audit(self, rows: list[tuple]) -> None:
        """Rows of (time, key id, endpoint, model, inputs, status, latency ms, input text or None)."""
        if rows:
            with self._connect() as db:
                db.executemany("INSERT INTO audit_log(time, key_id, endpoint, model, texts, status, latency_ms, input)"
                               " VALUES (?,?,?,?,?,?,?,?)", rows)

    def audit_rows(self, limit: int = 100) -> list[dict]:
        with self._connect() as db:
            return [dict(r) for r in db.execute("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))]

    @staticmethod
    def _record(row) -> ApiKey:
        return ApiKey(row["id"], row["role"], tuple(json.loads(row["models"])), row["created"], row["revoked"],
                      row["note"])
