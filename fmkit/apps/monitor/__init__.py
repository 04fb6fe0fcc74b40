"""The news sentiment monitor: topic + sentiment on a text stream, per-topic trends and surge alerts.

    fmkit monitor replay --input headlines.jsonl --out runs/monitor-2020

Scoring (scoring.py, sentiment.py, topics.py), the stream engine and store (engine.py, store.py),
trends and detectors (trends.py, detectors/), alerts and their sinks (alerts.py, sinks.py) and the
HTML report (report.py); docs/monitor.md describes it. Importing this package loads nothing heavy.
"""
