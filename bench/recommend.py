"""The text-aware recommender on the built-in movielens (issue 18 targets), every number from one command.

    .venv/bin/python bench/recommend.py --work bench-recommend

One run: ``fmkit recommend train --data movielens`` with its defaults (timed end to end: data,
popularity / item-kNN / ALS / BPR tuned on the validation slice, the MiniLM text model, the
LambdaRank hybrid, the evaluation), ``fmkit recommend evaluate --json`` on the written directory
(every model on the same stored time split and cold items), then the latency of ``recommend for``
one user at a time over all 9,066 items (known users, and the same histories sent as unseen users)
through the opened Recommender, as the server calls it. Results: WORK/results.json; the four
targets are checked at the end. ``--reuse`` skips the training when WORK/movies exists.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

TARGET_GAIN, TARGET_COLD, TARGET_P99_MS, TARGET_TRAIN_S = 1.05, 2.0, 20.0, 900.0
LATENCY_USERS = 200
SEED = 0


def cli(*argv: str) -> str:
    """Run one fmkit command in this process; its stdout (the --json output) is returned."""
    from fmkit.cli.main import main

    print("$ fmkit " + " ".join(argv), file=sys.stderr, flush=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    if code != 0:
        sys.exit(f"fmkit {' '.join(argv)} exited {code}")
    return out.getvalue()


def latency(directory: Path, threads: int | None) -> dict:
    """p50/p99 ms of recommend() for LATENCY_USERS known users and for their histories as unseen users."""
    import numpy as np

    from fmkit.apps.recommend.recommender import MAX_HISTORY, Recommender

    recommender = Recommender.open(directory, threads=threads)
    users = sorted(recommender.user_by_text.values(), key=str)
    picked = [users[i] for i in np.random.default_rng(SEED).choice(len(users), min(LATENCY_USERS, len(users)),
                                                                   replace=False)]
    recommender.recommend(user=picked[0])  # warm-up: first ONNX run, lazily built structures
    measured = {}
    for way in ("known user", "history in the request"):
        seconds = []
        for user in picked:
            started = time.perf_counter()
            if way == "known user":
                recommender.recommend(user=user, k=10)
            else:
                recommender.recommend(history=recommender.histories[user][-MAX_HISTORY:], k=10)  # the most recent
            seconds.append(time.perf_counter() - started)
        measured[way] = {"p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1),
                         "p99_ms": round(float(np.percentile(seconds, 99)) * 1000, 1), "users": len(seconds)}
    measured["model"], measured["items"] = recommender.default_model, len(recommender.items)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="bench-recommend", help="folder for the recommender and the results")
    parser.add_argument("--reuse", action="store_true", help="measure WORK/movies again without retraining")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads when measuring latency")
    parser.add_argument("--train-args", default="", help="extra `fmkit recommend train` flags")
    args = parser.parse_args()
    work = Path(args.work)
    out = work / "movies"
    wall = None
    if not (args.reuse and (out / "recommender.json").is_file()):
        started = time.perf_counter()
        cli("recommend", "train", "--data", "movielens", *args.train_args.split(), "--out", str(out), "--overwrite",
            "--json")
        wall = round(time.perf_counter() - started, 1)
    evaluation = json.loads(cli("recommend", "evaluate", str(out), "--json"))
    manifest = json.loads((out / "recommender.json").read_text(encoding="utf-8"))
    speed = latency(out, args.threads)
    best_name = max(("item-knn", "als", "bpr"), key=lambda name: evaluation[name]["ndcg@10"])
    best = evaluation[best_name]["ndcg@10"]
    hybrid = evaluation["hybrid"]["ndcg@10"]
    popular_cold = evaluation["popularity"]["cold.ndcg@10"]
    cold_best = max(evaluation["text"]["cold.ndcg@10"], evaluation["hybrid"]["cold.ndcg@10"])
    p99 = max(way["p99_ms"] for key, way in speed.items() if isinstance(way, dict))
    train_seconds = manifest["train_seconds"]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "bench/recommend.py " + " ".join(sys.argv[1:]),
        "data": {key: manifest["data"].get(key) for key in ("source", "items", "users", "cold_items", "interactions",
                                                              "drops")},
        "plots_matched": manifest["data"]["facts"].get("plots_matched"),
        "evaluation": evaluation,
        "by_history_length": manifest.get("by_history_length"),
        "fit_seconds": manifest["fit_seconds"], "train_seconds": train_seconds, "train_wall_seconds": wall,
        "latency": speed,
        "targets": {
            f"hybrid ndcg@10 / best baseline ({best_name}) >= {TARGET_GAIN}": round(hybrid / best, 3) if best else None,
            f"max(text, hybrid) cold.ndcg@10 / popularity's >= {TARGET_COLD}":
                round(cold_best / popular_cold, 2) if popular_cold else None,
            f"recommend for p99 ms <= {TARGET_P99_MS}": p99,
            f"training seconds <= {TARGET_TRAIN_S}": train_seconds,
        },
        "met": {"hybrid_gain": best > 0 and hybrid >= TARGET_GAIN * best,
                "cold": popular_cold > 0 and cold_best >= TARGET_COLD * popular_cold,
                "latency": p99 <= TARGET_P99_MS, "training": train_seconds <= TARGET_TRAIN_S},
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
