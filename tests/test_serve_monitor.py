"""``fmkit serve --monitor``: events in over HTTP with the keys, roles and limits of predict; a bad event fails
alone; ids count once (across a restart too); a surge gives one alert with evidence at /alerts, the webhook-free
alert log and /metrics; the trend page draws the series and the alert in headless Chromium.

The monitor scores with the Loughran-McDonald lexicon (M1's ``sentiment: lexicon``): a real scorer that loads
in a fraction of a second, so these tests exercise the server and M2's engine, not a model.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from conftest import headless_page, live_server, needs_chromium
from fmkit.serve.keys import KeyStore

CALM = ["Retailer announces store opening in Leeds", "Shares rise as profits improve", "Airline adds summer routes",
        "Carmaker reports record results", "Central bank holds rates steady", "Tech firm hires new chief",
        "Oil producer signs supply deal", "Housing market steady in spring", "Bank opens new branch",
        "Exporters gain from strong demand"]
GLOOM = ["Banks face losses as crisis deepens", "Layoffs mount as factory closes", "Retailer warns of weak sales "
         "and losses", "Airline collapses into bankruptcy", "Investors fear recession as markets fall",
         "Fraud charges hit lender", "Oil glut causes severe losses", "Jobs cut amid deepening crisis"]


def surge_stream() -> list[dict]:
    """12 calm days (1 gloomy headline in 10), then a day where 8 of 10 are gloomy."""
    start, events = datetime(2020, 3, 1, tzinfo=timezone.utc), []
    for day in range(13):
        for slot in range(10):
            gloomy = slot < 8 if day == 12 else slot == 0
            text = GLOOM[(day + slot) % len(GLOOM)] if gloomy else CALM[(day + slot) % len(CALM)]
            moment = start + timedelta(days=day, hours=8 + slot)
            events.append({"id": f"d{day}-{slot}", "time": moment.isoformat().replace("+00:00", "Z"), "text": text})
    return events


@pytest.fixture()
def monitor_yaml(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump({"sentiment": "lexicon", "interval": "1d", "refresh_seconds": 0,
                                    "workspace": str(tmp_path), "max_text_chars": 500,
                                    "detector": {"name": "zscore", "window": 7, "min_history": 3, "min_count": 5}}))
    return path


def serve(app, calls):
    """Run ``calls(client)`` against the app inside its lifespan (startup and the monitor's close included)."""
    import httpx

    async def run():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                return await calls(client)

    return asyncio.run(run())


def test_served_ingest_alerts_once_on_a_surge_with_the_keys_and_limits_of_predict(monitor_yaml, tmp_path):
    from fmkit.serve.app import create_app
    from fmkit.serve.config import ServeConfig

    store = KeyStore(tmp_path)
    admin, reader = store.create("admin")[0], store.create("read", ["news"])[0]
    other = store.create("predict", ["elsewhere"])[0]
    config = ServeConfig(monitors={"news": monitor_yaml}, workspace=tmp_path, max_events=200)
    events, auth = surge_stream(), {"Authorization": f"Bearer {admin}"}
    bad = [events[0], {"id": "t1", "text": "no time given"}, {"id": "t2", "time": "yesterday", "text": "x"},
           "not an object", {"id": "t3", "time": "2020-03-01T09:00:00Z", "text": "long " * 200}]

    async def calls(client):
        url = "/v1/monitors/news:ingest"
        reader_auth, other_auth = {"Authorization": f"Bearer {reader}"}, {"Authorization": f"Bearer {other}"}
        out = {"mixed": await client.post(url, json={"events": bad}, headers=auth),
               "again": await client.post(url, json={"events": events[:1]}, headers=auth),
               "anonymous": await client.post(url, json={"events": events[:1]}),
               "reader": await client.post(url, json={"events": events[:1]}, headers=reader_auth),
               "other": await client.post(url, json={"events": events[:1]}, headers=other_auth),
               "too_many": await client.post(url, json={"events": events[:1] * 201}, headers=auth),
               "not_events": await client.post(url, json={"texts": ["a"]}, headers=auth),
               "unknown": await client.post("/v1/monitors/nope:ingest", json={"events": events[:1]}, headers=auth)}
        out["stream"] = [await client.post(url, json={"events": events[start:start + 50]}, headers=auth)
                         for start in range(0, len(events), 50)]
        out["alerts"] = await client.get("/v1/monitors/news/alerts", headers=reader_auth)
        out["later"] = await client.get("/v1/monitors/news/alerts", params={"since": "2020-04-01"}, headers=reader_auth)
        out["bad_since"] = await client.get("/v1/monitors/news/alerts", params={"since": "soon"}, headers=reader_auth)
        out["now_since"] = await client.get("/v1/monitors/news/alerts", params={"since": "now"}, headers=reader_auth)
        out["series"] = await client.get("/v1/monitors/news/series", headers=reader_auth)
        out["listed"] = await client.get("/v1/monitors", headers=reader_auth)
        out["metrics"] = await client.get("/metrics", headers=auth)
        out["page"] = await client.get("/ui/monitors/news")
        return out

    out = serve(create_app(config), calls)
    mixed = out["mixed"].json()
    assert out["mixed"].status_code == 200 and mixed["accepted"] == 1
    assert [r["index"] for r in mixed["rejected"]] == [1, 2, 3, 4]  # each bad event refused alone, by its index
    assert "no time" in mixed["rejected"][0]["reason"] and "over the limit of 500" in mixed["rejected"][3]["reason"]
    assert out["again"].json()["duplicates"] == 1 and out["again"].json()["accepted"] == 0
    assert [out[k].status_code for k in ("anonymous", "reader", "other", "too_many", "not_events", "unknown")] == \
        [401, 403, 403, 413, 422, 404]
    stream = [response.json() for response in out["stream"]]
    assert sum(s["accepted"] for s in stream) == len(events) - 1 and sum(s["duplicates"] for s in stream) == 1
    raised = [alert for s in stream for alert in s["alerts"]]
    alerts = out["alerts"].json()["alerts"]
    assert len(raised) == len(alerts) == 1, alerts  # one surge, one alert
    alert = alerts[0]
    assert alert["topic"] == "all" and alert["start"].startswith("2020-03-13") and alert["negative_share"] >= 0.8
    assert len(alert["evidence"]) == 5 and all(e["sentiment"] == "negative" for e in alert["evidence"])
    assert out["later"].json()["alerts"] == [] and out["bad_since"].status_code == 422
    assert out["now_since"].status_code == 422  # pandas would read "now" as local time: refused, not guessed
    series = out["series"].json()["series"]
    assert len(series) == 13 and sum(row["count"] for row in series) == len(events)
    listed = out["listed"].json()
    assert [m["name"] for m in listed] == ["news"] and "config" not in listed[0]  # paths: admin keys only
    metrics = out["metrics"].text
    assert f'fmkit_monitor_events_total{{monitor="news",outcome="accepted"}} {len(events)}.0' in metrics
    assert 'fmkit_monitor_alerts_total{monitor="news"} 1.0' in metrics
    assert out["page"].status_code == 200 and "/v1/monitors/" in out["page"].text
    run = tmp_path / "monitors" / "news"  # closed at shutdown: series and manifest written
    assert json.loads((run / "manifest.json").read_text())["counts"]["ingested"] == len(events)
    assert len((run / "alerts.jsonl").read_text().splitlines()) == 1

    async def resend(client):  # a restart: the store remembers every id, and the alert is not raised again
        return [await client.post("/v1/monitors/news:ingest", json={"events": events[start:start + 50]}, headers=auth)
                for start in range(0, len(events), 50)]

    again = [response.json() for response in serve(create_app(config), resend)]
    assert sum(r["accepted"] for r in again) == 0 and sum(r["duplicates"] for r in again) == len(events)
    assert len((run / "alerts.jsonl").read_text().splitlines()) == 1


def test_serve_refuses_a_bad_monitor_file_before_starting(tmp_path):
    from fmkit.cli.main import main

    broken = tmp_path / "monitor.yaml"
    broken.write_text("interval: often\ndetector: {name: nope}\n")
    assert main(["serve", "--monitor", f"news={broken}", "--workspace", str(tmp_path)]) == 2
    assert main(["serve", "--monitor", f"news={tmp_path / 'missing.yaml'}", "--workspace", str(tmp_path)]) == 2


@needs_chromium
def test_the_trend_page_draws_the_series_and_the_alert(tiny_bundle, monitor_yaml, tmp_path):
    import httpx

    key = KeyStore(tmp_path).create("admin")[0]
    auth = {"Authorization": f"Bearer {key}"}
    with live_server(tiny_bundle, tmp_path, "--monitor", f"news={monitor_yaml}") as (_, base):
        events = surge_stream()
        for start in range(0, len(events), 50):
            assert httpx.post(f"{base}/v1/monitors/news:ingest", json={"events": events[start:start + 50]},
                              headers=auth, timeout=30).status_code == 200
        with headless_page(tmp_path) as page:
            page.goto(f"{base}/ui/monitors/news")
            assert page.locator(".topic").count() == 0  # nothing without a key
            page.goto(f"{base}/ui")  # the dashboard lists the monitor and links to its trend page
            page.fill("#key", key)
            page.click("#connect")
            page.wait_for_selector("#monitors a", timeout=15000)
            page.wait_for_function("document.querySelector('td.drift').textContent === 'not watched'", timeout=15000)
            assert "130 events, 1 alert(s)" in page.locator("#monitors").inner_text()
            page.click("#monitors a")  # the key stays in the tab's session: the page shows at once
            page.wait_for_selector(".topic[data-topic='all'] polyline.negative-share", timeout=15000)
            points = page.locator("polyline.negative-share").get_attribute("points").split()
            assert len(points) == 13
            assert page.locator("rect.alert-band").count() == 1
            assert "Banks face losses" in page.locator("#alerts").inner_text() or \
                any(g in page.locator("#alerts").inner_text() for g in ("crisis", "losses", "Layoffs"))
            page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)
    assert (tmp_path / "monitor.png").stat().st_size > 5_000


def test_an_alert_held_back_by_refresh_seconds_is_raised_once_traffic_stops(tmp_path):
    from fmkit.serve.app import create_app
    from fmkit.serve.config import ServeConfig

    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump({"sentiment": "lexicon", "interval": "1d", "refresh_seconds": 1,
                                    "workspace": str(tmp_path), "detector": {"window": 7, "min_history": 3}}))
    admin = KeyStore(tmp_path).create("admin")[0]
    auth, events = {"Authorization": f"Bearer {admin}"}, surge_stream()

    async def calls(client):
        url = "/v1/monitors/news:ingest"
        calm = await client.post(url, json={"events": events[:120]}, headers=auth)  # refreshed: no surge yet
        surge = await client.post(url, json={"events": events[120:]}, headers=auth)  # within 1 s: refresh skipped
        before = await client.get("/v1/monitors/news/alerts", headers=auth)
        await asyncio.sleep(2.5)  # no more traffic: the idle refresh runs
        after = await client.get("/v1/monitors/news/alerts", headers=auth)
        return calm.json(), surge.json(), before.json(), after.json()

    calm, surge, before, after = serve(create_app(ServeConfig(monitors={"news": path}, workspace=tmp_path)), calls)
    assert calm["alerts"] == [] and surge["alerts"] == [] and before["alerts"] == []
    assert [alert["start"][:10] for alert in after["alerts"]] == ["2020-03-13"]
