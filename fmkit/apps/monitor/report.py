"""The run report: one self-contained HTML page (inline SVG, no scripts, no network) per monitor run.

    fmkit monitor report runs/monitor-2020    ->  runs/monitor-2020/report.html

It shows, for each topic, the negative share per interval against its trailing baseline with the
event count underneath and every alert shaded; then the alerts with their evidence (the most
negative texts); then the detector settings and the scorer the run used. It reads only what the
run wrote (series.parquet or series.csv, alerts.jsonl, manifest.json), so a report can be rebuilt
at any time. Every text from the data is HTML-escaped: headlines are untrusted input.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pandas as pd

from fmkit.errors import BadInputError

REPORT_FILE = "report.html"
WIDTH, HEIGHT, PAD = 860, 220, 44  # one trend plot in px; PAD leaves room for the axis labels
VOLUME_SHARE = 0.22  # bottom part of a plot holding the event-count bars


def load_run(run_dir: Path) -> tuple[pd.DataFrame, list[dict], dict]:
    """(series, alerts, manifest) of a run directory, with a clear error when it is not one."""
    run_dir = Path(run_dir)
    parquet, csv = run_dir / "series.parquet", run_dir / "series.csv"
    if parquet.is_file():
        series = pd.read_parquet(parquet)
    elif csv.is_file():
        series = pd.read_csv(csv)
    else:
        raise BadInputError(f"{run_dir} holds no series.parquet or series.csv: it is not a monitor run "
                            "directory; make one with `fmkit monitor replay --input FILE --out DIR`")
    for column in ("start", "end"):
        series[column] = pd.to_datetime(series[column], utc=True)
    alerts_file = run_dir / "alerts.jsonl"
    alerts = [json.loads(line) for line in alerts_file.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if alerts_file.is_file() else []
    manifest_file = run_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else {}
    return series, alerts, manifest


def _points(xs, ys) -> list[str]:
    """SVG polyline point lists, one per run of defined values (an empty interval breaks the line)."""
    runs, current = [], []
    for x, y in zip(xs, ys):
        if pd.isna(y):
            if current:
                runs.append(" ".join(current))
            current = []
        else:
            current.append(f"{x:.1f},{y:.1f}")
    if current:
        runs.append(" ".join(current))
    return runs


def trend_svg(topic: str, table: pd.DataFrame, alerts: list[dict], first, last) -> str:
    """The negative share (line), its baseline (dashed), the counts (bars) and the alerts (shaded) of a topic."""
    span = max((last - first).total_seconds(), 1.0)
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    share_h = plot_h * (1 - VOLUME_SHARE)

    def x_of(time) -> float:
        return PAD + plot_w * (pd.Timestamp(time) - first).total_seconds() / span

    def y_of(share) -> float:
        return PAD + share_h * (1 - share)

    parts = [f'<svg class="trend" data-topic="{escape(topic)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" role="img" aria-label="negative share of {escape(topic)} over time">']
    for alert in alerts:
        x0, x1 = x_of(alert["start"]), x_of(alert["end"])
        parts.append(f'<rect class="alert-mark" x="{x0:.1f}" y="{PAD}" width="{max(x1 - x0, 2):.1f}" '
                     f'height="{plot_h}" fill="#d62728" fill-opacity="0.18"><title>alert {escape(alert["start"])}'
                     f' share {alert.get("negative_share")} vs {alert.get("baseline")}</title></rect>')
    most = max(int(table["count"].max()), 1)
    bar_w = max(plot_w * (table["end"].iloc[0] - table["start"].iloc[0]).total_seconds() / span - 0.5, 0.5)
    base_y = PAD + plot_h
    for start, count in zip(table["start"], table["count"]):
        if count:
            height = plot_h * VOLUME_SHARE * count / most
            parts.append(f'<rect class="volume" x="{x_of(start):.1f}" y="{base_y - height:.1f}" width="{bar_w:.1f}" '
                         f'height="{height:.1f}" fill="#999" fill-opacity="0.5"/>')
    middle = [x_of(start + (end - start) / 2) for start, end in zip(table["start"], table["end"])]
    for points in _points(middle, [y_of(v) if pd.notna(v) else v for v in table["baseline_share"]]):
        parts.append(f'<polyline class="baseline" points="{points}" fill="none" stroke="#555" '
                     'stroke-dasharray="4 3" stroke-width="1.2"/>')
    for points in _points(middle, [y_of(v) if pd.notna(v) else v for v in table["negative_share"]]):
        parts.append(f'<polyline class="share" points="{points}" fill="none" stroke="#1f4e99" stroke-width="1.6"/>')
    for share in (0.0, 0.5, 1.0):
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y_of(share):.1f}" y2="{y_of(share):.1f}" '
                     f'stroke="#ddd"/><text x="{PAD - 6}" y="{y_of(share) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{share:.0%}</text>')
    for when, anchor in ((first, "start"), (first + (last - first) / 2, "middle"), (last, "end")):
        parts.append(f'<text x="{x_of(when):.1f}" y="{HEIGHT - PAD + 16}" font-size="11" text-anchor="{anchor}">'
                     f'{pd.Timestamp(when):%Y-%m-%d %H:%M}</text>')
    parts.append(f'<text x="{PAD}" y="{PAD - 12}" font-size="13" font-weight="bold">{escape(topic)}: negative '
                 f'share (line), trailing baseline (dashed), events per interval (bars, max {most})</text></svg>')
    return "".join(parts)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return escape("" if value is None else str(value))


def _alert_rows(alerts: list[dict]) -> str:
    rows = []
    for index, alert in enumerate(alerts):
        evidence = "".join(f'<li><span class="value">{_cell(item.get("value"))}</span> '
                           f'{escape(str(item.get("text", "")))} <small>{escape(str(item.get("time", "")))}</small></li>'
                           for item in alert.get("evidence", []))
        rows.append(f'<tr class="alert" id="alert-{index}"><td>{escape(alert["topic"])}</td>'
                    f'<td>{escape(alert["start"])}</td><td>{escape(alert["end"])}</td>'
                    + "".join(f"<td>{_cell(alert.get(key))}</td>" for key in
                              ("negative_share", "baseline", "score", "count", "detector"))
                    + f'<td><ol class="evidence">{evidence}</ol></td></tr>')
    return "".join(rows)


def _settings_table(title: str, settings: dict, css: str) -> str:
    if not settings:
        return f'<h2>{title}</h2><p class="{css}">not recorded in this run\'s manifest.json</p>'
    rows = "".join(f"<tr><th>{escape(str(key))}</th><td>{escape(json.dumps(value, default=str))}</td></tr>"
                   for key, value in settings.items())
    return f'<h2>{title}</h2><table class="{css}">{rows}</table>'


def render_report(series: pd.DataFrame, alerts: list[dict], manifest: dict, title: str) -> str:
    settings = manifest.get("settings", {})
    topics = sorted(series["topic"].unique(), key=lambda topic: (topic != "all", topic))
    first, last = series["start"].min(), series["end"].max()
    plots = "".join(trend_svg(topic, series[series["topic"] == topic].sort_values("start"),
                              [alert for alert in alerts if alert["topic"] == topic], first, last)
                    for topic in topics) if len(series) else "<p>No events.</p>"
    counts = manifest.get("counts", {})
    summary = (f"{len(topics)} topic(s), {len(alerts)} alert(s), intervals "
               f"{escape(str(settings.get('interval', '?')))} from {first:%Y-%m-%d} to {last:%Y-%m-%d}"
               if len(series) else "no events")
    if counts:
        summary += "; " + ", ".join(f"{escape(str(key))} {escape(str(value))}" for key, value in counts.items())
    header = ("<tr><th>topic</th><th>start</th><th>end</th><th>negative share</th><th>baseline</th>"
              "<th>score (z)</th><th>events</th><th>detector</th><th>evidence: the most negative texts</th></tr>")
    alert_list = (f'<table id="alerts">{header}{_alert_rows(alerts)}</table>' if alerts
                  else '<p id="alerts">No alerts in this run.</p>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>body{{font:14px system-ui,sans-serif;margin:24px;max-width:1100px}} table{{border-collapse:collapse;margin:8px 0}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}} .evidence{{margin:0;padding-left:18px}}
.value{{color:#b00;font-family:monospace}} svg{{display:block;margin:12px 0}}</style></head>
<body><h1>{escape(title)}</h1><p id="summary">{summary}</p>
<h2>Alerts</h2>{alert_list}
<h2>Trends per topic</h2><div id="trends">{plots}</div>
{_settings_table("Detector settings", settings.get("detector", {}), "detector-settings")}
{_settings_table("Scorer", manifest.get("scorer", {}), "scorer")}
</body></html>"""


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) atomically from the run's files; returns its path."""
    from fmkit.fileio import write_text_atomic

    run_dir = Path(run_dir)
    series, alerts, manifest = load_run(run_dir)
    path = Path(out) if out else run_dir / REPORT_FILE
    write_text_atomic(path, render_report(series, alerts, manifest, f"News monitor: {run_dir.name}"))
    return path
