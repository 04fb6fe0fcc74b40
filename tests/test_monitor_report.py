"""The monitor's HTML report (fmkit/apps/monitor/report.py): built from a run directory's files and
checked in Debian's headless Chromium — a trend plot per topic with its alerts shaded, the alert list
with its evidence, the detector settings — and a hostile headline stays text."""

import json

import pandas as pd
import pytest

from conftest import headless_page, needs_chromium
from fmkit.apps.monitor.alerts import detect
from fmkit.apps.monitor.detectors.config import DetectorConfig
from fmkit.apps.monitor.report import write_report
from fmkit.apps.monitor.trends import compute_series, evidence_from_events
from fmkit.errors import BadInputError
from test_monitor_trends import stream

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">Oil falls'


def make_run(tmp_path, csv=False):
    """A run directory as `fmkit monitor replay` writes it: series, alerts.jsonl, manifest.json."""
    oil = stream(days=50, surges={35: 0.85}, topics=("oil",), seed=4)
    oil.loc[oil["time"].dt.day.eq(5) & oil["time"].dt.month.eq(2), "text"] = HOSTILE  # inside the surge
    oil.loc[oil["text"].eq(HOSTILE), ["sentiment", "value"]] = ["negative", -0.99]
    rates = stream(days=50, topics=("rates",), seed=5)
    events = pd.concat([oil, rates], ignore_index=True)
    cfg = DetectorConfig()
    series = compute_series(events, "1d", window=cfg.window)
    alerts = detect(series, cfg, evidence_from_events(events), evidence_count=3)
    run = tmp_path / "run"
    run.mkdir()
    if csv:
        series.to_csv(run / "series.csv", index=False)
    else:
        series.to_parquet(run / "series.parquet")
    (run / "alerts.jsonl").write_text("".join(json.dumps(alert) + "\n" for alert in alerts))
    (run / "manifest.json").write_text(json.dumps({
        "settings": {"interval": "1d", "detector": cfg.model_dump()},
        "scorer": {"sentiment": "models/news-sentiment", "runtime": "onnx"},
        "counts": {"read": len(events), "ingested": len(events), "duplicates": 0, "bad_lines": 0}}))
    return run, alerts


def test_report_needs_a_run_directory_and_reads_a_csv_series(tmp_path):
    with pytest.raises(BadInputError, match="not a monitor run directory"):
        write_report(tmp_path)
    run, alerts = make_run(tmp_path, csv=True)
    html = write_report(run).read_text()
    assert len(alerts) >= 1 and html.count('class="alert"') == len(alerts)
    assert HOSTILE not in html and "&lt;script&gt;" in html  # escaped, not markup


@needs_chromium
def test_report_in_headless_chromium_shows_trends_alerts_evidence_and_settings(tmp_path):
    run, alerts = make_run(tmp_path)
    assert [alert["topic"] for alert in alerts] == ["oil"]  # the planted surge, nothing on the clean topic
    report = write_report(run)
    with headless_page(tmp_path) as page:
        page.goto(report.as_uri())
        page.wait_for_selector("svg.trend")
        assert page.eval_on_selector_all("svg.trend", "svgs => svgs.map(s => s.dataset.topic)") == ["oil", "rates"]
        assert page.locator('svg[data-topic="oil"] rect.alert-mark').count() == 1
        assert page.locator('svg[data-topic="rates"] rect.alert-mark').count() == 0
        assert page.locator('svg[data-topic="oil"] polyline.share').count() >= 1
        box = page.locator('svg[data-topic="oil"]').bounding_box()
        assert box["width"] > 600 and box["height"] > 150  # drawn, not collapsed
        row = page.locator("#alerts tr.alert")
        assert row.count() == 1 and "oil" in row.inner_text() and alerts[0]["start"] in row.inner_text()
        evidence = page.locator("#alerts .evidence li")
        assert evidence.count() == 3 and "<script>" in evidence.first.inner_text()  # shown as text, first
        assert page.evaluate("window.pwned") is None  # and never run
        settings = page.locator("table.detector-settings").inner_text()
        assert "threshold" in settings and "min_count" in settings and "zscore" in settings
        assert "onnx" in page.locator("table.scorer").inner_text()
        assert "2 topic(s), 1 alert(s)" in page.locator("#summary").inner_text()
        screenshot = tmp_path / "report.png"
        page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
