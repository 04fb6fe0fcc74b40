"""fmkit/store against a real PostgreSQL server: the monitor's store shared by two ingest workers.

The fixture (tests/postgres_fixtures.py) starts a throwaway server; where none can start the tests skip
and say why.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import free_port
from monitor_fixtures import make_events, write_jsonl
from postgres_fixtures import postgres_url  # noqa: F401 - the fixture, imported to be found

from fmkit.errors import BadInputError


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
