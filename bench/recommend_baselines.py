"""The recommender baselines on movielens' time split and cold items, every number from one command.

    .venv/bin/python bench/recommend_baselines.py --out bench-recommend/baselines.json

Loads the built-in movielens (rating >= 4 -> positive; per-user time split: last 20% test, the 10%
before it validation; 10% of the items cold, seed 0), fits popularity, item-kNN, ALS and BPR on the
train split (each tuned over its grid on the validation slice), and evaluates them side by side
with ``evaluate_models``: ndcg@10, recall@10, MRR, coverage on the test split and the same on the
cold items. bench/recommend.py measures the whole recommender (text model, hybrid) the same way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from fmkit.apps.recommend.baselines import BASELINES
    from fmkit.apps.recommend.data import RecommendDataConfig, load_interactions
    from fmkit.apps.recommend.evaluate import evaluate_models

    started = time.perf_counter()
    data = load_interactions(RecommendDataConfig(data="movielens", seed=args.seed), log=print)
    models, fit_seconds, tuning = {}, {}, {}
    for name in BASELINES.names():
        begun = time.perf_counter()
        models[name] = BASELINES[name]().fit(data)
        fit_seconds[name] = round(time.perf_counter() - begun, 1)
        tuning[name] = models[name].facts_.get("tuning", {}).get("best")
        print(f"{name}: fitted and tuned in {fit_seconds[name]} s; chosen {tuning[name]}", flush=True)
    results = evaluate_models(models, data)
    columns = ["ndcg@10", "recall@10", "mrr", "coverage", "cold.ndcg@10", "cold.recall@10", "cold.mrr", "cold.coverage"]
    print("| model | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |")
    report = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "data": data.facts, "drops": data.drops,
              "results": results, "fit_seconds": fit_seconds, "tuned": tuning,
              "seconds": round(time.perf_counter() - started, 1)}
    print(f"users {results['popularity']['users']} (cold: {results['popularity'].get('cold.users')}); "
          f"total {report['seconds']} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
