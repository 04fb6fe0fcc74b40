"""A real `fmkit serve --workers N` process tree, and requests that reach every one of its workers.

Connections to one port are spread over the workers by the kernel, so "every worker answers" is shown by
sending requests on fresh connections, a few at a time, until each worker process id (the
``X-Fmkit-Worker`` header every response carries) has answered as wanted, or a deadline passes; the
failure then says which worker never did and what the others answered.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import free_port

WORKER_HEADER = "x-fmkit-worker"


def children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid``, minus multiprocessing's resource tracker (not a server worker)."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            command = (status.parent / "cmdline").read_bytes()
        except OSError:  # exited while we looked
            continue
        if int(fields.get("PPid", "0").strip()) == pid and b"resource_tracker" not in command:
            found.add(int(status.parent.name))
    return found


def fmkit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "fmkit", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        pytest.fail(f"fmkit {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def create_key(workspace: Path, role: str, *extra: str) -> dict:
    """A key made by the real CLI (`fmkit keys create --json`), as a user would."""
    return json.loads(fmkit("keys", "create", "--role", role, "--workspace", str(workspace), "--json", *extra).stdout)


def on_every_worker(base: str, pids: set[int], send, wanted, seconds: float = 30.0) -> dict[int, list]:
    """Call ``send(client) -> Response`` on fresh connections until every pid in ``pids`` gave a response for
    which ``wanted(response)`` holds; returns pid -> the responses it gave. Fails naming the missing workers."""
    answers: dict[int, list] = {}
    satisfied: set[int] = set()
    deadline = time.monotonic() + seconds

    def once(_):
        try:
            with httpx.Client(base_url=base, timeout=30) as client:  # a new connection: the kernel picks a worker
                return send(client)
        except httpx.TransportError:  # a worker being replaced; the deadline bounds the retries
            return None

    with ThreadPoolExecutor(4) as pool:
        while satisfied != pids:
            if time.monotonic() > deadline:
                seen = {pid: sorted({r.status_code for r in rs}) for pid, rs in answers.items()}
                pytest.fail(f"workers {sorted(pids - satisfied)} never answered as wanted in {seconds:.0f} s; "
                            f"statuses by worker: {seen}")
            for response in pool.map(once, range(4)):
                if response is None:
                    continue
                pid = int(response.headers[WORKER_HEADER])
                answers.setdefault(pid, []).append(response)
                if wanted(response):
                    satisfied.add(pid)
    unknown = set(answers) - pids
    assert not unknown, f"answers from processes {unknown} that are not workers of the server {pids}"
    return answers


@contextlib.contextmanager
def workers_server(bundle: Path, workspace: Path, workers: int, *extra: str):
    """``fmkit serve --workers N`` serving ``bundle`` as "reviews"; yields (supervisor process, base URL,
    worker pids) once every worker has answered /readyz with 200."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "fmkit", "serve", "--bundle", f"reviews={bundle}",
                                "--port", str(port), "--workspace", str(workspace), "--workers", str(workers), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        pids: set[int] = set()
        while len(pids) < workers:  # spawned interpreters import torch and load the model: allow for a busy machine
            if process.poll() is not None:
                pytest.fail(f"fmkit serve exited {process.returncode}: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(pids)} of {workers} workers became ready in 150 s")
            pids = children(process.pid)
            time.sleep(0.5)
        ready = on_every_worker(base, pids, lambda client: client.get("/readyz"), lambda r: r.status_code == 200,
                                seconds=max(10.0, deadline - time.monotonic()))
        yield process, base, set(ready)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=90)
