"""Tune a baseline's settings on the validation slice: a small grid, ndcg@10 on valid, never the test.

Each combination is fitted on the train split and scored on each user's validation items from the
train history (seen items masked, the same evaluation as the test). The best combination's fitted
state is kept, and the whole grid goes into ``facts_["tuning"]`` so the choice can be read back.
"""

from __future__ import annotations

import itertools
import time


def tune_(model, data, *, k: int = 10, log=lambda message: None):
    """Fit ``model`` with the best of its class's ``grid`` on ``data.valid`` (mutates ``model``; returns it)."""
    from fmkit.apps.recommend.evaluate import evaluate_models

    grid = getattr(type(model), "grid", {}) or {}
    names = sorted(grid)
    if not names or data.valid.empty:
        model.fit_train_(data)
        model.facts_["tuning"] = {"grid": grid, "skipped": "no grid" if not names else "no validation slice"}
        return model
    metric = f"ndcg@{k}"
    trials, best, best_value = [], None, -1.0
    started = time.perf_counter()
    for values in itertools.product(*(grid[name] for name in names)):
        settings = dict(zip(names, values))
        candidate = type(model)(**{**model.params(), **settings, "tune": False})
        candidate.fit_train_(data)
        value = evaluate_models({model.name: candidate}, data, "valid", k=k, cold=False)[model.name].get(metric, 0.0)
        trials.append({**settings, f"valid.{metric}": value})
        if value > best_value:
            best, best_value = candidate, value
    chosen = {name: getattr(best, name) for name in names}
    tuning = {"metric": f"valid.{metric}", "best": chosen, f"best.valid.{metric}": best_value, "trials": trials,
              "seconds": round(time.perf_counter() - started, 1)}
    state = dict(best.__dict__)
    state["tune"] = model.tune
    model.__dict__.update(state)
    model.facts_ = {**best.facts_, "tuning": tuning}
    log(f"  {model.name}: tuned on the validation slice ({len(trials)} settings): {chosen} "
        f"valid {metric} {best_value}")
    return model
