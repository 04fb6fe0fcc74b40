"""fmkit/store against a real PostgreSQL server: the monitor's store shared by two ingest workers.

The fixture starts a throwaway server (initdb + pg_ctl in a temporary folder, trust auth on 127.0.0.1,
fsync off). PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` (or ``nobody``)
user via runuser. Where no server binaries are found or it does not start, the tests skip and say why.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import free_port
from monitor_fixtures import make_events, write_jsonl

from fmkit.errors import BadInputError


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


def test_insert_ignoring_duplicates_on_postgres(postgres_url):
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from fmkit.store import check_reachable, insert_ignoring_duplicates, open_database

    engine = open_database(postgres_url)
    check_reachable(engine)
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    table = Table("store_probe", MetaData(), Column("id", String, primary_key=True), Column("value", Integer))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        assert insert_ignoring_duplicates(connection, table, [{"id": "a", "value": 1}, {"id": "b", "value": 2}],
                                          "id") == {"a", "b"}
        assert insert_ignoring_duplicates(connection, table, [{"id": "b", "value": 3}, {"id": "c", "value": 4}],
                                          "id") == {"c"}
    engine.dispose()


def test_unreachable_server_is_a_clear_error():
    from fmkit.store import check_reachable, open_database

    engine = open_database(f"postgresql://fmkit:secret@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(BadInputError, match="cannot be opened") as error:
        check_reachable(engine)
    assert "secret" not in str(error.value)
    with pytest.raises(BadInputError, match="not supported"):
        open_database("mysql://db/x")


WORKER = """
import json, sys
from fmkit.apps.monitor.config import MonitorConfig
from fmkit.apps.monitor.engine import Monitor
from fmkit.apps.monitor.sources import open_source
from fmkit.apps.monitor.stream import consume
feed, out, url = sys.argv[1:4]
monitor = Monitor(MonitorConfig(sentiment="lexicon", store=url, batch_size=16), out, log=lambda *_: None)
consume(monitor, open_source(feed, follow=False), follow=False)
monitor.close()
print(json.dumps(monitor.manifest()["counts"]))
"""


def test_two_ingest_workers_share_one_postgres_store(postgres_url, tmp_path):
    events = make_events(900, days=30, negative=0.15)
    for event in events[600:640]:  # one day's coverage turns negative: both workers see it, one alert results
        event["text"] += " losses bankruptcy"
    write_jsonl(tmp_path / "a.jsonl", events[:600])
    write_jsonl(tmp_path / "b.jsonl", events[300:])
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"{name}.jsonl"),
                                 str(tmp_path / f"out-{name}"), postgres_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "ab"]
    results = [worker.communicate(timeout=120) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), [stderr[-2000:] for _, stderr in results]
    counts = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in results]
    assert sum(count["ingested"] for count in counts) == 900  # every event stored by exactly one worker
    assert sum(count["duplicates"] for count in counts) == 300
    from fmkit.apps.monitor.store import MonitorStore

    store = MonitorStore(postgres_url)
    assert store.count() == 900
    alerts = store.alerts()
    assert any(alert["start"].startswith("2020-01-21") for alert in alerts)
    delivered = [json.loads(line) for name in "ab" if (tmp_path / f"out-{name}" / "alerts.jsonl").exists()
                 for line in (tmp_path / f"out-{name}" / "alerts.jsonl").read_text().splitlines()]
    assert sorted((a["topic"], a["start"]) for a in delivered) == sorted((a["topic"], a["start"]) for a in alerts)
    store.close()
