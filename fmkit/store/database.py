"""``open_database(url)``: a SQLAlchemy engine configured for how fmkit uses the database.

SQLite: write-ahead logging (readers never block the writer, a kill -9 never corrupts the file),
``synchronous=NORMAL`` (a committed transaction survives a killed process; only a power cut may drop the
last ones), a busy timeout so a second process waits for the lock instead of failing, foreign keys on.
PostgreSQL: ``postgresql://`` means psycopg 3 (the driver fmkit installs), with pre-ping so a restarted
server does not break a long-running worker. Anything else is refused with the schemes fmkit supports.

SQLAlchemy is imported inside the functions: ``import fmkit`` and the config modules stay cheap.
"""

from __future__ import annotations

from pathlib import Path

from fmkit.errors import BadInputError

SCHEMES = ("sqlite", "postgresql")
BUSY_TIMEOUT_MS = 30_000  # a second writer waits this long for SQLite's lock before "database is locked"
CONNECT_TIMEOUT_S = 10  # PostgreSQL: seconds to reach the server (libpq's connect_timeout)


def sqlite_url(path: str | Path) -> str:
    """``sqlite:///`` + the absolute path: the URL of a SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``: what logs and manifests may show."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL may still hold a password somewhere: show only a plain scheme
        scheme, separator, _ = str(url).partition("://")
        plain = separator and scheme.replace("+", "").replace("-", "").isalnum()
        return f"{scheme}://..." if plain else "(not a URL)"


def open_database(url: str, *, create: bool = True, pool_size: int = 5):
    """A SQLAlchemy ``Engine`` for ``url`` (``sqlite:///PATH``, ``sqlite://`` in memory, ``postgresql://...``).

    ``create``: make a SQLite file's folder when missing. A bad URL is a ``BadInputError`` that names it
    and the forms fmkit accepts; the connection itself is opened lazily (``check_reachable`` tries it).
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadInputError(f"store={redact_url(url)!r} is not a database URL; use sqlite:///path/to/file.db or "
                            "postgresql://user:password@host:5432/database") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in SCHEMES:
        raise BadInputError(f"store={redact_url(url)!r}: the {backend!r} database is not supported; use "
                            "sqlite:///path/to/file.db or postgresql://user:password@host:5432/database")
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise BadInputError(f"store={redact_url(url)!r}: fmkit talks to PostgreSQL through psycopg 3; "
                                "write postgresql:// or postgresql+psycopg://")
        # an unreachable host fails in seconds, not after the kernel's two-minute TCP timeout (the URL may say otherwise)
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT_S}
        return create_engine(parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True,
                             pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args)
    if driver not in ("", "pysqlite"):
        raise BadInputError(f"store={redact_url(url)!r}: use the built-in SQLite driver (sqlite:///path)")
    database = parsed.database
    if database and database != ":memory:" and create:
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"store={redact_url(url)!r}: cannot make its folder {folder} ({error.strerror}); "
                                "use a path in a writable folder") from None
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        if database and database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def check_reachable(engine, url: str | None = None) -> None:
    """Open one connection now: an unreachable server or unwritable file is a clear ``BadInputError`` that names
    the store (``url`` as the user wrote it, else the engine's; the password hidden) and what to check."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        shown = redact_url(url) if url else engine.url.render_as_string(hide_password=True)
        if engine.dialect.name == "postgresql":
            fix = ("check the host, port, user and database in the URL, that the server runs and accepts this "
                   "machine and user (pg_hba.conf), and the password (PGPASSWORD or ~/.pgpass)")
        else:
            fix = "check that the folder is writable and the file, if there, is a SQLite database"
        raise BadInputError(f"store {shown} cannot be opened: {reason}; {fix}") from None


def insert_ignoring_duplicates(connection, table, rows: list[dict], key: str) -> set:
    """Insert ``rows`` into ``table``, skipping those whose primary key is already there; returns the ``key``
    values actually inserted. One statement, so two workers inserting the same row race safely: exactly one
    of them gets it back (``ON CONFLICT DO NOTHING ... RETURNING``, on SQLite >= 3.35 and PostgreSQL)."""
    if not rows:
        return set()
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table).on_conflict_do_nothing().returning(table.c[key])
    inserted = set()
    for start in range(0, len(rows), 500):  # bounded statement size (SQLite's variable limit)
        result = connection.execute(statement, rows[start:start + 500])
        inserted.update(row[0] for row in result)
    return inserted
