"""A database from a URL: the one place fmkit turns ``sqlite:///...`` or ``postgresql://...`` into a SQLAlchemy engine.

    from fmkit.store import open_database
    engine = open_database("sqlite:///runs/monitor/monitor.db")     # WAL, one process (readers beside it)
    engine = open_database("postgresql://user@db:5432/fmkit")      # several workers on several machines

SQLite is the default everywhere (no server to run); PostgreSQL (through psycopg 3) is what several
processes on several machines share. The news monitor's event store and the server's keys, revocations
and audit log (fmkit/serve/keys.py, ``fmkit serve --store URL``) use it: one implementation. Importing this package loads no SQLAlchemy.
"""

from fmkit.store.database import (check_reachable, insert_ignoring_duplicates, open_database, redact_url,
                                  sqlite_url)

__all__ = ["open_database", "sqlite_url", "redact_url", "check_reachable", "insert_ignoring_duplicates"]
