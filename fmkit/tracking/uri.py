"""What ``--mlflow`` accepts: a directory (a local file store) or a tracking URI MLflow understands.

Checked before any training or export starts, without importing mlflow, so a typo costs a second and not
a training run. http(s) stores are probed with one TCP connect: MLflow's own client would retry an
unreachable server with back-off for minutes before it says so.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from fmkit.errors import BadInputError

SCHEMES = ("file", "http", "https", "sqlite")
HELP = ("a directory (a local MLflow file store, created if missing, e.g. ./mlruns) or a tracking URI: "
        "file:///abs/mlruns, http://host:5000, https://..., sqlite:///mlflow.db")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def resolve_tracking_uri(value: str, *, probe: bool = True) -> str:
    """The tracking URI to hand to MLflow for ``value``; ``BadInputError`` naming the fix when it is not one.

    >>> resolve_tracking_uri("/tmp/mlruns")
    'file:///tmp/mlruns'
    """
    text = (value or "").strip()
    if not text:
        raise BadInputError(f"--mlflow needs a value: {HELP}")
    match = _SCHEME.match(text)
    if match and len(match.group(1)) > 1:  # "C:" is a Windows drive, not a scheme
        scheme = match.group(1).lower()
        if scheme not in SCHEMES:
            raise BadInputError(f"--mlflow {value!r}: unsupported scheme {scheme!r} (fmkit passes on "
                                f"{', '.join(s + ':' for s in SCHEMES)}); give {HELP}")
        if scheme == "file":
            _check_directory(Path(urlparse(text).path), value)
        elif scheme in ("http", "https"):
            _check_server(text, value, probe=probe)
        elif scheme == "sqlite" and not text.startswith("sqlite:///"):
            raise BadInputError(f"--mlflow {value!r}: a SQLite URI has three slashes and a file path, "
                                "e.g. sqlite:///mlflow.db (relative) or sqlite:////abs/mlflow.db")
        return text
    path = Path(text).expanduser().resolve()
    _check_directory(path, value)
    return path.as_uri()


def _check_directory(path: Path, value: str) -> None:
    if path.exists() and not path.is_dir():
        raise BadInputError(f"--mlflow {value!r}: {path} is a file, not a directory; an MLflow file store is a "
                            "directory (e.g. ./mlruns), a database is a sqlite:/// URI")
    parent = next((p for p in (path, *path.parents) if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise BadInputError(f"--mlflow {value!r}: cannot create {path} (no existing directory above it)")


def _check_server(text: str, value: str, *, probe: bool) -> None:
    parsed = urlparse(text)
    if not parsed.hostname:
        raise BadInputError(f"--mlflow {value!r}: no host in the URL; e.g. http://localhost:5000")
    if not probe:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=5):
            pass
    except OSError as error:
        raise BadInputError(f"--mlflow {value!r}: cannot reach the MLflow tracking server at {parsed.hostname}:{port} "
                            f"({error.strerror or error}); start it (`mlflow server --port {port}`) or give a "
                            "directory for a local file store") from error
