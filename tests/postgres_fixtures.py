"""A throwaway PostgreSQL server for the tests that need a real one (fmkit/store, the serve key store).

``postgres_url`` (module scope) starts it with initdb + pg_ctl in a temporary folder (trust auth on
127.0.0.1, fsync off) and yields its URL. PostgreSQL refuses to run as root, so as root it runs as the
``postgres`` (or ``nobody``) user via runuser. Where no server binaries are found or it does not start,
the tests skip and say why. Import the fixture into a test module: ``from postgres_fixtures import postgres_url``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import free_port


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)


def _as_user() -> list[str]:
    """The command prefix that runs a server binary as an unprivileged user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        runner = shutil.which("runuser") or shutil.which("su")
        if runner and runner.endswith("runuser"):
            return [runner, "-u", user, "--"]
    pytest.skip("PostgreSQL cannot run as root and neither runuser nor a postgres/nobody user is available")


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin: "
                    "install Debian's postgresql (make postgres) to run these tests")
    prefix = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="fmkit-pg-", dir="/tmp"))  # not pytest's root-only tmp: the user must enter
    data, port = folder / "data", free_port()
    if prefix:
        shutil.chown(folder, user=prefix[2])
    setup = subprocess.run(prefix + [initdb, "-D", str(data), "-U", "fmkit", "--auth=trust", "-E", "UTF8",
                                     "--no-sync"], capture_output=True, text=True)
    if setup.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed, so no PostgreSQL server for these tests: {setup.stderr.strip()[-300:]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    start = subprocess.run(prefix + [pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
                                     "-w", "-t", "30", "start"], capture_output=True, text=True)
    if start.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace")[-300:] if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"the PostgreSQL server did not start: {start.stderr.strip()[-200:]} {log}")
    try:
        yield f"postgresql://fmkit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
