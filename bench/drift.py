"""Drift watch on a real served model: does ``fmkit serve --watch`` stay quiet on familiar traffic and flag shifted
traffic, and what does watching cost?

The model is the monitor's financial sentiment bundle (MiniLM fine-tuned by ``fmkit monitor`` on Guardian
headlines; its drift reference was written by fine-tuning from its test split). Each text of every traffic
pool is run once through the bundle's runtime with the watch attached (fmkit.serve.drift.observe_runtime: the
same code the server uses), which gives its probabilities and penultimate features; then ``--windows`` windows
of ``--window`` rows are drawn per pool (seeded, without replacement within a window) and judged by a
DriftWatch with the server's default thresholds (PSI 0.25, confidence drop 0.10, MMD p < 0.01).

Pools: the bundle's own validation split (same distribution as the reference), the gold set's test headlines
(hand-labelled, never trained on), Guardian headlines of March 2020 (the COVID crash: a real shift in topic and
tone), the gold headlines a person labelled negative (a prediction shift), and Rotten Tomatoes snippets (another
domain). Also timed: one check, and predict throughput with and without the watch.

    python bench/drift.py --bundle WORKSPACE/monitor-sentiment/<key>/full [--window 200 --windows 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def pools(bundle: Path, manifest) -> dict[str, list[str]]:
    import pandas as pd

    from fmkit.apps.monitor.gold import guardian_file, read_gold
    from fmkit.bundle.split import split_rows
    from fmkit.evaluate.stage import EvaluateConfig
    from fmkit.tasks import TASKS

    task = TASKS.get(manifest.task)
    data = task.load_data(task.data_config(manifest.data, EvaluateConfig()))
    validation = [data.texts[i] for i in split_rows(bundle, data, "validation")]
    gold = read_gold()
    guardian = pd.read_csv(guardian_file())
    march = [" ".join(str(t).split()) for t, d in zip(guardian["Text"], guardian["Date"]) if str(d).startswith("2020-03")]
    reviews = pd.read_csv(Path(guardian_file()).parent / "rotten_tomatoes_corpus_full.csv.bz2")
    reviews = reviews[reviews.category != "plot"].sample(2000, random_state=0)["text"].astype(str).tolist()
    return {"validation split (reference's distribution)": validation,
            "gold test headlines (unseen, same source)": [r["text"] for r in gold if r["split"] == "test"],
            "Guardian headlines, March 2020": march,
            "gold headlines labelled negative": [r["text"] for r in gold if r["sentiment"] == "negative"],
            "Rotten Tomatoes review snippets": reviews}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="a classifier bundle with a drift reference")
    parser.add_argument("--window", type=int, default=200, help="rows per window (default: 200)")
    parser.add_argument("--windows", type=int, default=20, help="windows per pool (default: 20)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    import fmkit
    from fmkit.evaluate.reference import read_reference
    from fmkit.serve.config import ServeConfig
    from fmkit.serve.drift import DriftWatch, observe_runtime

    bundle = Path(args.bundle)
    runtime = fmkit.load(bundle, threads=args.threads)
    reference = read_reference(bundle, runtime.manifest)
    config = ServeConfig(watch=True, watch_window=args.window, watch_min_rows=min(100, args.window))
    results = {"bundle": str(bundle), "runtime": runtime.backend, "reference": reference.record["rows"],
               "window": args.window, "windows": args.windows, "pools": {}}
    for name, texts in pools(bundle, runtime.manifest).items():
        collector = DriftWatch(name, reference, config.model_copy(update={"watch_window": 10 ** 6}))
        hook = observe_runtime(runtime, collector, lambda: None)
        runtime.predict_proba(texts)
        hook.remove()
        del runtime.forward  # the instance's wrapper: the class's forward again, for the next pool
        probabilities, features = np.array(collector.probabilities), np.array(collector.features)
        flags, figures = {"prediction": 0, "confidence": 0, "input": 0}, {"psi": [], "drop": [], "p": []}
        check_seconds = []
        for seed in range(args.windows):
            rows = np.random.default_rng(seed).choice(len(texts), min(args.window, len(texts)), replace=False)
            watch = DriftWatch(name, reference, config)
            watch.observe(probabilities[rows])
            watch.observe_features(features[rows])
            started = time.perf_counter()
            body = watch.report()
            check_seconds.append(time.perf_counter() - started)
            for signal in body["drifting"]:
                flags[signal] += 1
            figures["psi"].append(body["prediction"]["psi"])
            figures["drop"].append(body["confidence"]["drop"])
            figures["p"].append(body["input"]["p_value"])
        results["pools"][name] = {
            "texts": len(texts), "flagged_%": {k: round(100 * v / args.windows, 1) for k, v in flags.items()},
            "median_psi": round(statistics.median(figures["psi"]), 4),
            "median_confidence_drop": round(statistics.median(figures["drop"]), 4),
            "median_mmd_p": round(statistics.median(figures["p"]), 4),
            "check_ms_median": round(1000 * statistics.median(check_seconds), 1)}
        print(name, json.dumps(results["pools"][name]), flush=True)

    texts = pools(bundle, runtime.manifest)["Guardian headlines, March 2020"][:600]
    plain = min(timed(runtime.predict_proba, texts) for _ in range(3))
    watch = DriftWatch("throughput", reference, config)
    observe_runtime(runtime, watch, lambda: None)
    watched = min(timed(runtime.predict_proba, texts) for _ in range(3))
    results["throughput"] = {"texts": len(texts), "plain_per_s": round(len(texts) / plain, 1),
                             "watched_per_s": round(len(texts) / watched, 1),
                             "overhead_%": round(100 * (watched - plain) / plain, 1)}
    print("throughput", json.dumps(results["throughput"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def timed(function, *arguments) -> float:
    started = time.perf_counter()
    function(*arguments)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
