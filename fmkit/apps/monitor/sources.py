"""Where events come from: a JSONL file, a folder of them, or stdin; read once (replay) or followed as they grow.

Every source hands out ``Line`` records (source name, 1-based line number, text) in small reads, so the
engine can score and store one micro-batch at a time and a bad line can be reported by its number.
Followed files are read by byte offset: a line still being written (no newline yet) waits for the next
read; a file that shrank was replaced, and is read again from its start (the store's ids dedupe it).
A restarted monitor reads its inputs from the start too: ingestion is idempotent by event id, so that
costs a scan, never a double count.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fmkit.errors import BadInputError

STDIN = "-"
PATTERN = "*.jsonl"


@dataclass(frozen=True)
class Line:
    source: str
    number: int
    text: str


class FileSource:
    """One JSONL file; ``follow``: keep reading what is appended to it."""

    def __init__(self, path: Path, *, follow: bool = False, log: Callable[[str], None] = print):
        self.path, self.follow, self.log = Path(path), follow, log
        self._offset = 0
        self._number = 0
        self._handle = None
        self._partial = b""
        self.exhausted = False

    def read(self, limit: int) -> list[Line]:
        """Up to ``limit`` complete lines that are there now (never blocks)."""
        if self.exhausted:
            return []
        if self._handle is None:
            if not self.path.exists():
                if self.follow:
                    return []  # not written yet
                raise BadInputError(f"--input {self.path} does not exist")
            self._handle = open(self.path, "rb")
        if self.follow:
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                return []  # rotated away; the new file has not appeared yet
            if now.st_ino != os.fstat(self._handle.fileno()).st_ino:  # rotated: a new file under the same name
                self.log(f"{self.path} was replaced by a new file; reading it from the start (known ids are skipped)")
                self._handle.close()
                self._handle = open(self.path, "rb")
                self._offset, self._number, self._partial = 0, 0, b""
            elif now.st_size < self._offset:
                self.log(f"{self.path} shrank: it was truncated; reading it again from the start (known ids are "
                         "skipped)")
                self._handle.seek(0)
                self._offset, self._number, self._partial = 0, 0, b""
        lines: list[Line] = []
        while len(lines) < limit:
            chunk = self._handle.readline()
            if not chunk:
                break
            self._offset += len(chunk)
            if not chunk.endswith(b"\n"):
                self._partial += chunk  # the writer is mid-line: wait for the rest
                continue
            raw, self._partial = self._partial + chunk, b""
            self._number += 1
            lines.append(Line(str(self.path), self._number, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
        if len(lines) < limit and not self.follow:
            if self._partial:  # the last line of a finished file needs no newline
                self._number += 1
                lines.append(Line(str(self.path), self._number, self._partial.decode("utf-8", errors="replace")))
                self._partial = b""
            self.close()
            self.exhausted = True
        return [line for line in lines if line.text.strip()]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class FolderSource:
    """Every ``*.jsonl`` in a folder, by name; ``follow``: new files are picked up as they appear."""

    def __init__(self, path: Path, *, follow: bool = False, log: Callable[[str], None] = print):
        self.path, self.follow, self.log = Path(path), follow, log
        self._files: dict[Path, FileSource] = {}
        self.exhausted = False
        if not self.path.is_dir():
            raise BadInputError(f"--input {self.path} is not a folder")
        if not follow and not list(self.path.glob(PATTERN)):
            raise BadInputError(f"--input {self.path} holds no {PATTERN} files")

    def read(self, limit: int) -> list[Line]:
        if self.exhausted:
            return []
        for path in sorted(self.path.glob(PATTERN)):
            self._files.setdefault(path, FileSource(path, follow=self.follow, log=self.log))
        lines: list[Line] = []
        for source in self._files.values():
            if len(lines) >= limit:
                break
            lines += source.read(limit - len(lines))
        if not self.follow and all(source.exhausted for source in self._files.values()):
            self.exhausted = True
        return lines

    def close(self) -> None:
        for source in self._files.values():
            source.close()


class StdinSource:
    """Lines from stdin, read by a background thread so a quiet pipe never blocks a flush."""

    def __init__(self, stream=None):
        self._stream = stream if stream is not None else sys.stdin
        self._queue: queue.Queue = queue.Queue(maxsize=100_000)
        self._number = 0
        self._done = threading.Event()
        self.exhausted = False
        threading.Thread(target=self._pump, name="fmkit-monitor-stdin", daemon=True).start()

    def _pump(self) -> None:
        for text in self._stream:
            self._queue.put(text)
        self._done.set()

    def read(self, limit: int, wait: float = 0.0) -> list[Line]:
        lines: list[Line] = []
        while len(lines) < limit:
            try:
                text = self._queue.get(timeout=wait) if wait and not lines else self._queue.get_nowait()
            except queue.Empty:
                break
            self._number += 1
            if text.strip():
                lines.append(Line("<stdin>", self._number, text.rstrip("\r\n")))
        if not lines and self._done.is_set() and self._queue.empty():
            self.exhausted = True
        return lines

    def close(self) -> None:
        pass


def open_source(spec: str, *, follow: bool, log: Callable[[str], None] = print):
    """``-`` -> stdin; a folder -> its ``*.jsonl``; anything else -> one file."""
    if spec == STDIN:
        return StdinSource()
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, follow=follow, log=log)
    if not follow and not path.exists():
        raise BadInputError(f"--input {spec} does not exist; give a JSONL file, a folder of *.jsonl files, or - "
                            "for stdin")
    return FileSource(path, follow=follow, log=log)
