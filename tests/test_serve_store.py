"""The serve key store (keys, revocations, audit log) in fmkit/store: the workspace's SQLite file as it has
always been, and a real PostgreSQL server (tests/postgres_fixtures.py) that replicas share.

A serve.sqlite written by earlier fmkit versions keeps working unchanged; two `fmkit serve --workers 2`
workers on PostgreSQL share keys made by `fmkit keys create --store`, a revocation and the audit log;
an unreachable or invalid --store stops `fmkit serve` and `fmkit keys` with exit 2 naming the URL (its
password hidden) before anything starts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time

import httpx
import pytest

from conftest import free_port
from postgres_fixtures import postgres_url  # noqa: F401 - the fixture, imported to be found
from serve_workers_fixtures import create_key, fmkit, on_every_worker, workers_server

from fmkit.errors import BadInputError
from fmkit.serve.keys import KeyStore

# The schema fmkit wrote to .fmkit/serve.sqlite before the store layer (frozen here on purpose).
LEGACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash TEXT NOT NULL, role TEXT NOT NULL,
  models TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT, note TEXT
);
CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY, time TEXT NOT NULL, key_id TEXT, endpoint TEXT NOT NULL, model TEXT,
  texts INTEGER, status INTEGER NOT NULL, latency_ms REAL, input TEXT
);
"""


def legacy_workspace(root):
    """A workspace whose serve.sqlite an earlier fmkit made: the legacy tables, one key, one audit row."""
    path = root / ".fmkit" / "serve.sqlite"
    path.parent.mkdir(parents=True)
    salt, secret = secrets.token_bytes(16), secrets.token_urlsafe(32)
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SCHEMA)
        db.execute("INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?)",
                   ("0a1b2c3d", salt, hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest(), "predict",
                    json.dumps(["reviews"]), "2026-01-01T00:00:00+00:00", None, "made by fmkit 0.x"))
        db.execute("INSERT INTO audit_log(time, key_id, endpoint, model, texts, status, latency_ms, input) "
                   "VALUES ('2026-01-01T00:00:01+00:00', '0a1b2c3d', 'predict', 'reviews', 1, 200, 3.5, NULL)")
    path.chmod(0o600)
    return path, f"fmk_0a1b2c3d_{secret}"


def schema(path):
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT name, sql FROM sqlite_master WHERE type='table'").fetchall())


def test_an_existing_serve_sqlite_keeps_working_unchanged(tmp_path):
    path, token = legacy_workspace(tmp_path)
    before = schema(path)
    store = KeyStore(tmp_path)
    assert store.path == path and store.url == f"sqlite:///{path}"
    key = store.verify(token)
    assert key is not None and key.id == "0a1b2c3d" and key.models == ("reviews",) and key.note == "made by fmkit 0.x"
    new_token, _ = store.create("read", ["reviews"])
    store.write_audit([("2026-01-01T00:00:02+00:00", key.id, "predict", "reviews", 2, 200, 4.25, None)])
    rows = store.audit_rows()
    assert [(r["id"], r["latency_ms"]) for r in rows] == [(2, 4.25), (1, 3.5)]
    assert [k.id for k in store.list()][0] == "0a1b2c3d" and len(store.list()) == 2
    store.revoke("0a1b2c3d")
    store.close()
    assert schema(path) == before  # same file, same tables, same column definitions
    assert path.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as db:  # and what the store layer wrote reads back with plain sqlite3
        assert db.execute("SELECT revoked IS NOT NULL FROM api_keys WHERE id='0a1b2c3d'").fetchone() == (1,)
    assert KeyStore(tmp_path).verify(token) is None and KeyStore(tmp_path).verify(new_token) is not None


def test_a_fresh_workspace_gets_the_same_tables(tmp_path):
    legacy_path, _ = legacy_workspace(tmp_path / "old")
    KeyStore(tmp_path / "new").close()
    assert schema(tmp_path / "new" / ".fmkit" / "serve.sqlite") == schema(legacy_path)


def test_two_replicas_share_keys_revocations_and_the_audit_log_on_postgres(postgres_url, tmp_path):
    first = KeyStore(tmp_path / "a", cache_seconds=0.3, store=postgres_url)
    second = KeyStore(tmp_path / "b", cache_seconds=0.3, store=postgres_url)  # another machine: its own workspace
    assert first.engine.dialect.name == "postgresql" and first.path is None
    assert not (tmp_path / "a" / ".fmkit").exists()  # nothing written to the workspace
    token, record = first.create("predict", ["reviews"], note="shared")
    assert second.verify(token) == record and first.verify(token) == record  # both hold it in their cache now
    second.revoke(record.id)
    assert first.verify(token) == record  # still in first's cache ...
    time.sleep(0.35)
    assert first.verify(token) is None  # ... and refused once the cache time is over
    first.write_audit([("2026-01-01T00:00:00+00:00", record.id, "predict", "reviews", 1, 200, 1.5, None)])
    second.write_audit([("2026-01-01T00:00:01+00:00", None, "predict", "reviews", None, 401, 0.5, None)])
    assert [(r["status"], r["time"]) for r in first.audit_rows(2)] == [(401, "2026-01-01T00:00:01+00:00"),
                                                                       (200, "2026-01-01T00:00:00+00:00")]
    assert [k.revoked is not None for k in second.list() if k.id == record.id] == [True]
    first.close(), second.close()


def test_fmkit_serve_workers_share_a_postgres_store(tiny_bundle, postgres_url, tmp_path):
    store = ["--store", postgres_url]
    admin = create_key(tmp_path / "ops", "admin", *store)["key"]  # made on another "machine": a different workspace
    with workers_server(tiny_bundle, tmp_path / "serve", 2, *store, "--key-cache-seconds", "1") as (_, base, pids):
        assert not (tmp_path / "serve" / ".fmkit" / "serve.sqlite").exists()
        made = create_key(tmp_path / "ops", "predict", "--models", "reviews", *store)

        def predict(client):
            return client.post("/v1/models/reviews:predict", headers={"Authorization": f"Bearer {made['key']}"},
                               json={"texts": ["a dull and cold plot"]})

        on_every_worker(base, pids, predict, lambda r: r.status_code == 200)
        fmkit("keys", "revoke", made["id"], "--workspace", str(tmp_path / "ops"), *store)
        revoked = time.monotonic()
        on_every_worker(base, pids, predict, lambda r: r.status_code == 401, seconds=20)
        assert time.monotonic() - revoked < 1.0 + 3.0
        sent = {}

        def probe(client):
            name = f"pg-probe-{len(sent)}-{secrets.token_hex(2)}"
            response = client.get(f"/v1/models/{name}/card", headers={"Authorization": f"Bearer {admin}"})
            sent[name] = int(response.headers["x-fmkit-worker"])
            return response

        on_every_worker(base, pids, probe, lambda r: r.status_code == 404)
        assert set(sent.values()) == pids
        deadline, logged = time.monotonic() + 10, set()
        while not set(sent) <= logged and time.monotonic() < deadline:
            time.sleep(0.3)
            reader = KeyStore(tmp_path / "ops", store=postgres_url)
            logged = {row["model"] for row in reader.audit_rows(limit=10_000)}
            reader.close()
        assert set(sent) <= logged, f"audit rows missing for {sorted(set(sent) - logged)}"


def test_a_store_that_stops_answering_fails_closed_and_keeps_the_audit(tiny_bundle, postgres_url, tmp_path):
    """The database vanishes under a running server: keys are refused with 503 (never let through on an
    expired cache), the audit rows wait in memory and are written once the database is back."""
    import asyncio

    from sqlalchemy import create_engine, text

    from fmkit.serve.app import create_app
    from fmkit.serve.config import ServeConfig

    server = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    name = f"gone_{secrets.token_hex(3)}"

    def database(statement):
        with server.connect() as connection:
            connection.execute(text(statement))

    database(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    token, _ = KeyStore(tmp_path, store=url).create("predict", ["reviews"])
    app = create_app(ServeConfig(bundles={"reviews": tiny_bundle}, workspace=tmp_path, store=url,
                                 key_cache_seconds=0))
    headers = {"Authorization": f"Bearer {token}"}
    kept = None

    async def scenario():
        nonlocal kept
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                body = {"texts": ["a warm film"]}
                assert (await client.post("/v1/models/reviews:predict", headers=headers, json=body)).status_code == 200
                database(f"DROP DATABASE {name} WITH (FORCE)")
                refused = await client.post("/v1/models/reviews:predict", headers=headers, json=body)
                assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable"
                assert name not in refused.text and "127.0.0.1" not in refused.text  # no server details to callers
                await asyncio.sleep(1.2)  # two flushes fail: the rows are kept
                kept = [row[5] for row in app.state.fmkit.audit]  # the 200 too, unless flushed before the drop
                assert kept in ([200, 503], [503]), kept
                database(f"CREATE DATABASE {name}")
                KeyStore(tmp_path, store=url).close()  # its tables again (a restored, empty database)
                await asyncio.sleep(1.2)
                assert app.state.fmkit.audit == []

    asyncio.run(scenario())
    rows = KeyStore(tmp_path, store=url).audit_rows()
    assert [(row["endpoint"], row["status"]) for row in reversed(rows)] == [("predict", status) for status in kept]
    database(f"DROP DATABASE {name} WITH (FORCE)")
    server.dispose()


def test_an_unreachable_store_stops_serve_and_keys_naming_it(tiny_bundle, tmp_path):
    nobody = free_port()  # no server listens there
    url = f"postgresql://fmkit:s3cret-pw@127.0.0.1:{nobody}/fmkit"
    port = free_port()
    started = time.monotonic()
    served = fmkit("serve", "--bundle", f"reviews={tiny_bundle}", "--workspace", str(tmp_path), "--workers", "2",
                   "--port", str(port), "--store", url, check=False)
    assert served.returncode == 2, served.stderr
    assert f"store postgresql://fmkit:***@127.0.0.1:{nobody}/fmkit cannot be opened" in served.stderr
    assert "s3cret-pw" not in served.stderr and "Connection refused" in served.stderr
    assert "PGPASSWORD" in served.stderr  # the fix: what to check
    assert time.monotonic() - started < 60
    with pytest.raises(httpx.ConnectError):  # the server never started
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    listed = fmkit("keys", "list", "--workspace", str(tmp_path), "--store", url, check=False)
    assert listed.returncode == 2 and "cannot be opened" in listed.stderr and "s3cret-pw" not in listed.stderr
    assert not (tmp_path / ".fmkit").exists()


@pytest.mark.parametrize("url, message", [
    ("mysql://fmkit:s3cret-pw@db/fmkit", "store='mysql://fmkit:***@db/fmkit': use sqlite:///"),
    ("sqlite://", "is an in-memory database"),
    ("postgresql+asyncpg://fmkit:s3cret-pw@db/fmkit", "store='postgresql+asyncpg://fmkit:***@db/fmkit': use"),
])
def test_an_invalid_store_url_is_a_clear_error(tiny_bundle, tmp_path, url, message):
    served = fmkit("serve", "--bundle", f"reviews={tiny_bundle}", "--workspace", str(tmp_path), "--store", url,
                   check=False)
    assert served.returncode == 2 and message in served.stderr and "s3cret-pw" not in served.stderr, served.stderr


def test_fmkit_keys_names_a_bad_store_and_the_fix(tmp_path):
    driver = fmkit("keys", "list", "--store", "postgresql+asyncpg://fmkit:s3cret-pw@db/fmkit", check=False)
    assert driver.returncode == 2 and "through psycopg 3" in driver.stderr and "s3cret-pw" not in driver.stderr
    with pytest.raises(BadInputError, match="Is a directory"):
        KeyStore(tmp_path, store=f"sqlite:///{tmp_path}")
