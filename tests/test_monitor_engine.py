"""The monitor's stream engine: events, sources, the store, replay/run through the CLI, restart after kill -9.

The scorer is real: the tiny sentiment bundle of monitor_fixtures.py for the replay (a real fmkit bundle
through M1's scorer), the Loughran-McDonald lexicon scorer elsewhere (no torch: the subprocesses
start in a second).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from monitor_fixtures import headline, make_events, sentiment_bundle, write_jsonl  # noqa: F401  (fixture)

from fmkit.apps.monitor.config import MonitorConfig
from fmkit.apps.monitor.events import BadEvent, parse_line
from fmkit.apps.monitor.sources import FileSource, FolderSource, StdinSource
from fmkit.errors import BadInputError


def lexicon_monitor(out: Path, **settings):
    from fmkit.apps.monitor.engine import Monitor

    return Monitor(MonitorConfig(sentiment="lexicon", refresh_seconds=0, **settings), out, log=lambda *_: None)


# -- events and config ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, reason", [
    ('{"id": 1, "time": "2020-01-02T10:00:00Z", "text": "ok"', "not valid JSON"),
    ('{"id": 1, "text": "no time"}', "no time"),
    ('{"id": 1, "time": "2020-01-02"}', "no text"),
    ('{"time": "2020-01-02", "text": "t"}', "no id"),
    ('{"id": 1, "time": "next tuesday", "text": "t"}', "not ISO 8601"),
    ('{"id": 1, "time": 1583712000, "text": "t"}', "not an ISO 8601 string"),
    ('{"id": 1, "time": "2020-01-02", "text": "' + "x" * 41 + '"}', "41 characters, over the limit of 40"),
    ('{"id": 1, "time": "2020-01-02", "text": "   "}', "text is empty"),
    ('["a list"]', "not a list"),
    ('{"id": 1, "time": "0001-01-01T00:00:00+01:00", "text": "t"}', "not ISO 8601"),  # out of range in UTC
    ('{"id": 1, "time": "9999-12-30", "text": "t"}', "outside 1970-01-01"),  # would stretch every series
    ('{"id": 1, "time": "1969-12-31T23:00:00Z", "text": "t"}', "check the year"),
    ('{"id": ' + "9" * 5000 + ', "time": "2020-01-02", "text": "t"}', "not valid JSON"),  # int over 4,300 digits
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # nesting deeper than the stack
])
def test_bad_events_say_what_is_wrong(line, reason):
    with pytest.raises(BadEvent, match=reason):
        parse_line(line, max_text_chars=40)


def test_times_become_utc_and_extra_fields_are_kept():
    event = parse_line('{"id": 7, "time": "2020-03-09T10:30:00+02:00", "text": "Oil slumps", "url": "u"}',
                       max_text_chars=40)
    assert (event.id, event.time.isoformat(), event.extra) == ("7", "2020-03-09T08:30:00+00:00", {"url": "u"})
    assert parse_line('{"id": "a", "time": "2020-03-09", "text": "t"}', max_text_chars=9).time.isoformat() == \
        "2020-03-09T00:00:00+00:00"  # no offset: read as UTC


def test_config_reports_every_error_at_once():
    with pytest.raises(ValueError) as error:
        MonitorConfig(interval="hourly", batch_size=0, store="mysql://db/x", evidence=-1, poll_seconds=0)
    message = str(error.value)
    for part in ("interval='hourly'", "batch_size=0", "store='mysql://db/x'", "evidence=-1", "poll_seconds=0"):
        assert part in message
    with pytest.raises(ValueError, match="name='magic'"):
        MonitorConfig(detector={"name": "magic"})


# -- sources ----------------------------------------------------------------------------------------------------
def test_followed_file_waits_for_a_line_being_written(tmp_path):
    path = tmp_path / "feed.jsonl"
    source = FileSource(path, follow=True)
    assert source.read(10) == []  # not there yet: a followed file may appear later
    path.write_text('{"a": 1}\n{"b":')
    assert [line.text for line in source.read(10)] == ['{"a": 1}']
    with open(path, "a") as handle:
        handle.write(' 2}\n\n{"c": 3}\n')
    lines = source.read(10)
    assert [(line.number, line.text) for line in lines] == [(2, '{"b": 2}'), (4, '{"c": 3}')]
    path.write_text('{"new": 1}\n')  # replaced by a shorter file: read again from its start
    assert [line.text for line in source.read(10)] == ['{"new": 1}']
    path.rename(tmp_path / "feed.jsonl.1")  # log rotation: moved away, a new file appears later
    assert source.read(10) == []
    path.write_text('{"rotated": 1}\n{"rotated": 2}\n{"rotated": 3}\n')  # already longer than the old offset
    assert [line.text for line in source.read(10)] == ['{"rotated": 1}', '{"rotated": 2}', '{"rotated": 3}']


def test_folder_picks_up_new_files_and_replay_ends(tmp_path):
    (tmp_path / "a.jsonl").write_text("1\n2\n")
    followed = FolderSource(tmp_path, follow=True)
    assert [line.text for line in followed.read(10)] == ["1", "2"]
    (tmp_path / "b.jsonl").write_text("3")  # no newline yet: still being written
    (tmp_path / "notes.txt").write_text("ignored\n")
    assert followed.read(10) == []
    replay = FolderSource(tmp_path, follow=False)
    assert [line.text for line in replay.read(10)] == ["1", "2", "3"] and replay.exhausted
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="holds no"):
        FolderSource(tmp_path / "empty", follow=False)


def test_stdin_source_reads_until_the_pipe_closes():
    source = StdinSource(io.StringIO('{"x": 1}\n\n{"x": 2}\n'))
    lines = []
    while not source.exhausted:
        lines += source.read(10, wait=0.05)
    assert [(line.source, line.number) for line in lines] == [("<stdin>", 1), ("<stdin>", 3)]


# -- the engine -------------------------------------------------------------------------------------------------
def test_ingest_refuses_bad_events_alone_and_counts_duplicates(tmp_path):
    events = make_events(40, days=4)
    monitor = lexicon_monitor(tmp_path)
    first = monitor.ingest(events[:30] + [{"id": "broken", "text": "no time"}] + events[:5])
    assert (first.accepted, first.duplicates) == (30, 5)
    assert first.rejected == [(30, "no time: every event needs id, time, text")]
    again = monitor.ingest(events)
    assert (again.accepted, again.duplicates, again.rejected) == (10, 30, [])
    assert monitor.store.count() == 40
    assert int(monitor.series()["count"].sum()) == 40
    monitor.close()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"] == {"read": 76, "ingested": 40, "duplicates": 35, "rejected": 1, "bad_lines": 0}
    assert manifest["scorer"]["sentiment"]["kind"] == "lexicon" and manifest["stored_events"] == 40


def test_late_events_land_in_their_own_interval(tmp_path):
    monitor = lexicon_monitor(tmp_path, interval="1d")
    monitor.ingest(make_events(100, days=10))
    before = monitor.series().set_index("start")["count"]
    late = {"id": "late-1", "time": "2020-01-03T12:00:00Z", "text": "bank losses deepen"}
    monitor.ingest(make_events(10, start="2020-01-09", days=1, prefix="new") + [late])
    after = monitor.series().set_index("start")["count"]
    day3 = pd.Timestamp("2020-01-03", tz="UTC")
    assert after[day3] == before[day3] + 1
    assert int(after.sum()) == 111
    monitor.close()


def test_threads_of_one_server_share_a_monitor(tmp_path):
    monitor = lexicon_monitor(tmp_path, batch_size=8)
    events = make_events(200, days=5)
    results = []
    workers = [threading.Thread(target=lambda part=part: results.append(monitor.ingest(part)))
               for part in (events[:120], events[80:], events[40:160])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sum(result.accepted for result in results) == 200 == monitor.store.count()
    assert sum(result.duplicates for result in results) == 3 * 120 - 200
    monitor.close()


def test_replay_cli_scores_with_a_bundle_alerts_on_a_surge_and_is_idempotent(tmp_path, sentiment_bundle, capsys):
    import random

    from fmkit.cli.main import main

    events = make_events(480, days=24, negative=0.15, seed=3)  # 20 a day
    rng = random.Random(5)
    for event in events[360:380]:  # day 19 (2020-01-19): every headline negative
        event["text"] = headline("negative", rng, int(event["id"][1:]))
    records = events + ['{"id": "x1", "time": "2020-01-05T00:00:00Z", "text": ', events[3]]
    feed = write_jsonl(tmp_path / "feed.jsonl", records)
    out = tmp_path / "run"
    arguments = ["monitor", "replay", "--input", str(feed), "--out", str(out), "--sentiment", str(sentiment_bundle),
                 "--workspace", str(tmp_path), "--batch-size", "32", "--json"]
    assert main(arguments) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["counts"] == {"read": 482, "ingested": 480, "duplicates": 1, "rejected": 1, "bad_lines": 1}
    assert json.loads((out / "bad_lines.jsonl").read_text())["line"] == 481
    assert manifest["scorer"]["sentiment"]["kind"] != "lexicon"
    series = pd.read_parquet(out / "series.parquet")
    assert int(series["count"].sum()) == 480 and set(series["topic"]) == {"all"}
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    surge = [alert for alert in alerts if alert["start"] == "2020-01-19T00:00:00+00:00"]
    assert len(surge) == 1 and surge[0]["negative_share"] > 0.8 and surge[0]["negative_share"] > surge[0]["baseline"]
    assert len(surge[0]["evidence"]) == 5 and all(item["sentiment"] == "negative" for item in surge[0]["evidence"])
    assert (out / "report.html").is_file()
    assert main(arguments) == 0  # the same input again: nothing new, nothing alerted twice
    again = json.loads(capsys.readouterr().out)
    assert (again["counts"]["ingested"], again["counts"]["duplicates"], again["stored_events"]) == (0, 481, 480)
    assert (out / "alerts.jsonl").read_text().count("\n") == len(alerts)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "series.parquet"), series)


def test_replay_needs_input_and_out(tmp_path, capsys):
    from fmkit.cli.main import main

    assert main(["monitor", "replay", "--out", str(tmp_path)]) == 2
    assert "needs --input" in capsys.readouterr().err
    assert main(["monitor", "replay", "--input", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert main(["monitor", "replay", "--input", "x", "--out", "y", "--interval", "soon"]) == 2
    assert "interval='soon'" in capsys.readouterr().err


def test_sample_writes_the_shipped_stream_that_replay_reads(tmp_path, capsys):
    from fmkit.cli.main import main

    events = tmp_path / "guardian.jsonl"
    assert main(["monitor", "sample", "--out", str(events), "--limit", "300"]) == 0
    assert "wrote 300 events" in capsys.readouterr().out
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(rows) == 300 and {"id", "time", "text"} <= set(rows[0]) and rows[0]["time"] <= rows[-1]["time"]
    out = tmp_path / "run"
    assert main(["monitor", "replay", "--input", str(events), "--out", str(out), "--sentiment", "lexicon",
                 "--no-report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["ingested"] == 300
    assert main(["monitor", "sample", "--out", str(tmp_path / "x.jsonl"), "--limit", "0"]) == 2


# -- run: stdin, and a restart after kill -9 ---------------------------------------------------------------------
def monitor_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "fmkit", "monitor", "run", "--sentiment", "lexicon", "--poll-seconds", "0.05",
            "--refresh-seconds", "0", *extra]


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM monitor_events").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_run_reads_stdin_until_it_closes(tmp_path):
    events = make_events(50, days=2)
    lines = "".join(json.dumps(event) + "\n" for event in events) + "not json\n"
    result = subprocess.run(monitor_command("--input", "-", "--out", str(tmp_path / "out"), "--json"), input=lines,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert (manifest["counts"]["ingested"], manifest["counts"]["bad_lines"]) == (50, 1)
    assert "<stdin>:51: skipped: not valid JSON" in result.stderr


def test_restart_after_kill_9_loses_nothing_and_counts_nothing_twice(tmp_path):
    events = make_events(400, days=20)
    feed, out = tmp_path / "feed.jsonl", tmp_path / "out"
    db = out / "monitor.db"
    command = monitor_command("--input", str(feed), "--out", str(out), "--batch-size", "10")
    write_jsonl(feed, events[:100])
    worker = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    written, deadline = 100, time.monotonic() + 60
    while stored(db) < 100 and time.monotonic() < deadline:  # keep the file growing while it ingests
        if written < 300:
            write_jsonl(feed, events[written:written + 10], mode="a")
            written += 10
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert worker.returncode == -signal.SIGKILL
    at_kill = stored(db)
    assert 100 <= at_kill < 400, worker.stderr.read()
    # the rest arrives, with 20 re-sent events and a corrupt line, while nobody runs
    write_jsonl(feed, events[written:] + events[:20] + ['{"id": "half'], mode="a")
    restarted = subprocess.Popen(command + ["--json"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    deadline = time.monotonic() + 60
    while stored(db) < 400 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # let it pass the last line
    restarted.send_signal(signal.SIGTERM)
    stdout, stderr = restarted.communicate(timeout=30)
    assert restarted.returncode == 0, stderr
    manifest = json.loads(stdout)
    with sqlite3.connect(db) as connection:
        ids = [row[0] for row in connection.execute("SELECT id FROM monitor_events")]
        topic_rows = connection.execute("SELECT COUNT(*) FROM monitor_event_topics").fetchone()[0]
    assert sorted(ids) == sorted(event["id"] for event in events) and topic_rows == 400
    assert manifest["counts"]["ingested"] == 400 - at_kill  # the killed run's events: duplicates now
    assert manifest["counts"]["duplicates"] == at_kill + 20 and manifest["counts"]["bad_lines"] == 1
    assert int(pd.read_parquet(out / "series.parquet")["count"].sum()) == 400
    keys = [(alert["topic"], alert["start"]) for alert in map(json.loads, (out / "alerts.jsonl").read_text()
                                                               .splitlines())] if (out / "alerts.jsonl").exists() else []
    assert len(keys) == len(set(keys))
    assert os.path.getsize(db) > 0
