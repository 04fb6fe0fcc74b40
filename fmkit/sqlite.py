"""One way to open the workspace's SQLite files: row access by name, commit or roll back as a unit."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(path: Path):
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        with db:  # commit on success, roll back on error
            yield db
    finally:
        db.close()
