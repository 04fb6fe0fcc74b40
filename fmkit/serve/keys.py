"""API keys: 32 random bytes shown once, stored only as a salted hash, checked in constant time.

A key reads ``fmk_<id>_<secret>``: the id is public (it names the key in lists and the audit
log), the secret is 32 random bytes. Being high-entropy, a key needs no slow password hash: a
salted HMAC-SHA256 resists every offline attack that matters and keeps per-request cost tiny.

Keys and the audit log live in a database from fmkit/store: by default the workspace's SQLite file
``.fmkit/serve.sqlite`` (the file and tables fmkit always used), or any ``--store URL``
(``postgresql://...``) that several workers and machines share (docs/serve_scale.md).
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

from fmkit.errors import BadInputError, FmkitError

ROLES = ("admin", "predict", "read")
PREFIX = "fmk"
ALL_MODELS = "*"
NO_MODELS = "a key needs the models it may use: pass --models NAME[,NAME] (API: \"models\": [\"NAME\"]), or '*' for all"
# SQLite files get exactly the tables fmkit has always written (existing workspaces open unchanged); a server
# database gets the same tables from ``_tables`` (SQLAlchemy types: BYTEA for the salt, SERIAL for the row id).
SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS api_keys (\n"
    "  id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash TEXT NOT NULL, role TEXT NOT NULL,\n"
    "  models TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT, note TEXT\n)",
    "CREATE TABLE IF NOT EXISTS audit_log (\n"
    "  id INTEGER PRIMARY KEY, time TEXT NOT NULL, key_id TEXT, endpoint TEXT NOT NULL, model TEXT,\n"
    "  texts INTEGER, status INTEGER NOT NULL, latency_ms REAL, input TEXT\n)",
)
AUDIT_COLUMNS = ("time", "key_id", "endpoint", "model", "texts", "status", "latency_ms", "input")


class StoreUnavailable(FmkitError):
    """The key store did not answer (a PostgreSQL server restarting, a full disk): the request is refused
    with 503, never let through on a stale or missing key row."""


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


def _tables(metadata):
    """The two tables, as the SQLite file has always had them (``id INTEGER PRIMARY KEY`` is SQLite's rowid)."""
    from sqlalchemy import Column, Float, Integer, LargeBinary, Table, Text

    keys = Table("api_keys", metadata,
                 Column("id", Text, primary_key=True), Column("salt", LargeBinary, nullable=False),
                 Column("hash", Text, nullable=False), Column("role", Text, nullable=False),
                 Column("models", Text, nullable=False), Column("created", Text, nullable=False),
                 Column("revoked", Text), Column("note", Text))
    audit = Table("audit_log", metadata,
                  Column("id", Integer, primary_key=True, autoincrement=True), Column("time", Text, nullable=False),
                  Column("key_id", Text), Column("endpoint", Text, nullable=False), Column("model", Text),
                  Column("texts", Integer), Column("status", Integer, nullable=False), Column("latency_ms", Float),
                  Column("input", Text))
    return keys, audit


def _private(path: Path) -> None:
    """The database (key hashes, the audit log, texts under --log-inputs) is readable by its owner
    only; SQLite gives its journal and -wal/-shm files the same mode."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in ("-journal", "-wal", "-shm"))):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(bytes(salt), secret.encode(), hashlib.sha256).hexdigest()


def default_store(workspace: Path) -> str:
    """The SQLite file every workspace has used: WORKSPACE/.fmkit/serve.sqlite."""
    from fmkit.store import sqlite_url

    return sqlite_url(Path(workspace) / ".fmkit" / "serve.sqlite")


class KeyStore:
    """Keys and the audit log in ``store`` (a database URL; default the workspace's SQLite file).

    ``verify`` caches key rows for ``cache_seconds`` so a busy server does not query the database per
    request; a revocation (made by any process sharing the store) takes effect within that time.
    Opening checks that the database answers and creates the tables when missing, so a wrong URL is a
    ``BadInputError`` naming it (password hidden) before a server starts.
    """

    def __init__(self, workspace: Path | str = ".", cache_seconds: float = 2.0, store: str | None = None):
        from sqlalchemy import MetaData
        from sqlalchemy.exc import SQLAlchemyError

        from fmkit.store import check_reachable, open_database, redact_url

        self.cache_seconds = cache_seconds
        self._rows: dict[str, tuple[float, dict | None]] = {}  # key id -> (read at, row or None)
        self.url = store or default_store(Path(workspace))
        self.engine = open_database(self.url)
        self.shown_url = redact_url(self.url)
        self.path = self._sqlite_file()
        check_reachable(self.engine, self.url)
        self.metadata = MetaData()
        self.keys, self.audit = _tables(self.metadata)
        try:
            self._create_tables()
        except SQLAlchemyError:  # another replica created them at the same moment: they exist now
            try:
                self._create_tables()
            except SQLAlchemyError as error:
                raise BadInputError(f"store {self.shown_url}: cannot create the key tables ({_reason(error)}); "
                                    "the database user needs CREATE on its schema, or create them once as "
                                    "another user") from None

    def _create_tables(self) -> None:
        if self.engine.dialect.name != "sqlite":
            self.metadata.create_all(self.engine)
            return
        with self.engine.begin() as connection:
            for statement in SQLITE_SCHEMA:
                connection.exec_driver_sql(statement)

    def _sqlite_file(self) -> Path | None:
        """The SQLite file (made 0600), or None for a server database; an in-memory store is refused."""
        if self.engine.dialect.name != "sqlite":
            return None
        database = self.engine.url.database
        if not database or database == ":memory:":
            raise BadInputError(f"store {self.shown_url!r} is an in-memory database: its keys vanish with the "
                                "process and no other worker sees them; use sqlite:///path/to/serve.sqlite")
        path = Path(database).expanduser()
        try:
            _private(path)
        except OSError as error:
            raise BadInputError(f"store {self.shown_url}: cannot open {path} ({error.strerror}); use a writable "
                                "file path (its folder is created when missing)") from None
        return path

    def close(self) -> None:
        self.engine.dispose()

    def create(self, role: str, models: list[str] | None = None, note: str | None = None) -> tuple[str, ApiKey]:
        """Make a key; returns (the full key, shown this once; its record)."""
        from fmkit.bundle.manifest import utc_now

        if role not in ROLES:
            raise BadInputError(f"role {role!r} is unknown; use one of {', '.join(ROLES)}")
        models = check_allowlist([ALL_MODELS] if models is None else models)
        key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
        record = ApiKey(key_id, role, tuple(models), utc_now(), None, note)
        with self.engine.begin() as connection:
            connection.execute(self.keys.insert().values(
                id=key_id, salt=salt, hash=_digest(salt, secret), role=role, models=json.dumps(models),
                created=record.created, revoked=None, note=note))
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

    def _row(self, key_id: str) -> dict | None:
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        cached = self._rows.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            with self.engine.connect() as connection:
                found = connection.execute(select(self.keys).where(self.keys.c.id == key_id)).mappings().first()
        except SQLAlchemyError as error:
            raise StoreUnavailable(f"the key store {self.shown_url} did not answer ({_reason(error)})") from None
        row = dict(found) if found is not None else None
        if len(self._rows) > 10_000:  # unknown ids from a scan must not grow memory without bound
            self._rows.clear()
        self._rows[key_id] = (time.monotonic(), row)
        return row

    def list(self) -> list[ApiKey]:
        from sqlalchemy import literal_column, select

        # oldest first; within one second in the order made (SQLite's rowid; a server database by id)
        then = literal_column("rowid") if self.engine.dialect.name == "sqlite" else self.keys.c.id
        with self.engine.connect() as connection:
            rows = connection.execute(select(self.keys).order_by(self.keys.c.created, then)).mappings()
            return [self._record(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        from fmkit.bundle.manifest import utc_now

        table = self.keys
        with self.engine.begin() as connection:
            changed = connection.execute(table.update().where(table.c.id == key_id, table.c.revoked.is_(None))
                                         .values(revoked=utc_now())).rowcount
        self._rows.pop(key_id, None)
        if not changed:
            known = [k.id for k in self.list() if not k.revoked]
            raise BadInputError(f"no active key {key_id!r}; active keys: {', '.join(known) or 'none'}")
        return next(k for k in self.list() if k.id == key_id)

    def write_audit(self, rows: list[tuple]) -> None:
        """Rows of (time, key id, endpoint, model, inputs, status, latency ms, input text or None), one transaction."""
        if rows:
            with self.engine.begin() as connection:
                connection.execute(self.audit.insert(), [dict(zip(AUDIT_COLUMNS, row)) for row in rows])

    def audit_rows(self, limit: int = 100) -> list[dict]:
        from sqlalchemy import select

        with self.engine.connect() as connection:
            rows = connection.execute(select(self.audit).order_by(self.audit.c.id.desc()).limit(limit)).mappings()
            return [dict(row) for row in rows]

    @staticmethod
    def _record(row) -> ApiKey:
        return ApiKey(row["id"], row["role"], tuple(json.loads(row["models"])), row["created"], row["revoked"],
                      row["note"])


def _reason(error) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
