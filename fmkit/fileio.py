"""Atomic writes and content digests: a crash never leaves a half-written artifact.

Temporary names carry the writer's PID (``.NAME.PID-XXXX.partial``, ``.NAME.PID-XXXX.tmp``) and
the writer holds an exclusive ``flock`` on them while it works. A ``kill -9`` cannot clean up
after itself, so the next write of the same name removes what a dead writer left: the lock
is free once its holder has died (whatever became of its PID), and a live writer's lock is
never taken from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

CHUNK = 1 << 20
# A leftover without a PID (written by fmkit before 0.x named them) is removed only when this old.
LEGACY_STALE_SECONDS = 24 * 3600
# The swap of an overwritten bundle takes milliseconds; a trash directory this old is abandoned.
TRASH_STALE_SECONDS = 3600
# A writer creates its temporary name, then locks it: younger than this, an unlocked one may be just born.
NEWBORN_SECONDS = 10

try:
    import fcntl
except ImportError:  # Windows: fall back to "is the PID alive"
    fcntl = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on ``fd``; False when a live process holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _owner_gone(path: Path, pid: int) -> bool:
    """Whether the writer that left ``path`` is dead: its lock is free (or, without flock, its PID is gone)."""
    if fcntl is None:
        return not _pid_alive(pid)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # vanished or unreadable: not ours to judge
    try:
        return _lock(fd)  # released when fd closes below; we delete the path right after
    finally:
        os.close(fd)


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def remove_stale_leftovers(final: Path) -> list[Path]:
    """Delete what dead writers of ``final`` left beside it; returns what was removed.

    Matches only this name's own leftovers (``.NAME.PID-XXXX.partial``, ``.NAME.PID-XXXX.tmp``,
    ``.NAME.old-PID``), never those of a name that merely starts the same way.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    stem = re.escape(f".{final.name}.")
    owned = re.compile(stem + r"(\d+)-[A-Za-z0-9_]+\.(?:partial|tmp(?:\.[A-Za-z0-9]+)?)")
    legacy = re.compile(stem + r"[a-z0-9_]{8}(?:\.partial|\.tmp|" + re.escape(final.suffix or ".tmp") + ")")
    trash = re.compile(stem + r"old-(\d+)")
    removed = []
    for entry in final.parent.iterdir():
        name = entry.name
        if not name.startswith(f".{final.name}."):
            continue
        if match := owned.fullmatch(name):
            pid = int(match.group(1))
            stale = _owner_gone(entry, pid) and (not _pid_alive(pid) or _age_seconds(entry) > NEWBORN_SECONDS)
        elif match := trash.fullmatch(name):
            stale = not _pid_alive(int(match.group(1))) or _age_seconds(entry) > TRASH_STALE_SECONDS
        elif legacy.fullmatch(name):
            stale = _age_seconds(entry) > LEGACY_STALE_SECONDS
        else:
            continue
        if stale:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry)
    return removed


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        _lock(fd)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, path)  # while the lock is held: no one mistakes it for a dead writer's
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling file path; ``os.replace`` it onto ``final`` only if the block succeeds.

    For writers that need a path (``DataFrame.to_parquet``); the temporary name ends in ``final``'s
    suffix so they pick the same format and compression.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".tmp" + final.suffix, dir=final.parent)
    try:
        _lock(fd)
        yield Path(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to ``final`` only if the block succeeds.

    The temporary directory lives next to ``final`` so the rename stays on one filesystem. What
    a killed earlier writer of ``final`` left behind is removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        from fmkit.errors import BadInputError

        raise BadInputError(f"{final} already exists; choose another --out or pass --overwrite")
    remove_stale_leftovers(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".partial", dir=final.parent))
    fd = os.open(tmp, os.O_RDONLY) if fcntl is not None else None
    try:
        if fd is not None:
            _lock(fd)  # held until the rename: marks the partial as a live writer's
        yield tmp
        if final.exists():
            trash = final.with_name(f".{final.name}.old-{os.getpid()}")
            shutil.rmtree(trash, ignore_errors=True)  # a dead process with our PID left it: the name is ours now
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)
