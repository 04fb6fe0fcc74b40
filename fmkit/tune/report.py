"""The study summary: ``OUT/study.json`` and ``OUT/study.html`` (+ ``study.png``), rebuilt from the storage.

Built from the study itself, not from this worker's memory, so every worker's trials are in it and
any worker (or a re-run) writes the same file. ``best`` is the best trial of a single-objective
study, ``front`` the Pareto-optimal trials of a multi-objective one (Optuna's ``best_trials``);
``fmkit report OUT`` reads ``study.json`` to mark them in the frontier report. ``cost`` adds up the
trials' wall time and training steps (what a search spends, to compare with default runs).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

SUMMARY_NAME = "study.json"


def study_summary(study, storage: str) -> dict:
    import optuna

    trials = []
    for trial in study.get_trials(deepcopy=False):
        trials.append({
            "number": trial.number, "state": trial.state.name, "params": trial.params,
            "values": trial.values, "bundle": trial.user_attrs.get("bundle") if trial.state.name == "COMPLETE" else None,
            "content_digest": trial.user_attrs.get("content_digest"), "seconds": trial.user_attrs.get("seconds"),
            "train_steps": trial.user_attrs.get("train_steps"), "measurements": trial.user_attrs.get("measurements", {}),
            "pruned_at": trial.user_attrs.get("pruned_at"), "worker": trial.user_attrs.get("worker"),
            "validation_curve": trial.user_attrs.get("validation_curve"),
            "duration_seconds": (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start else None,
        })
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    multi = len(study.directions) > 1
    if not complete:
        chosen = []
    elif multi:
        chosen = sorted(t.number for t in study.best_trials)
    else:
        chosen = [study.best_trial.number]
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial["state"]] = counts.get(trial["state"], 0) + 1
    durations = [t["duration_seconds"] for t in trials if t["duration_seconds"] is not None]
    return {
        "study": study.study_name, "storage": storage, "objectives": study.user_attrs.get("objectives"),
        "directions": [d.name.lower() for d in study.directions], "space": study.user_attrs.get("space"),
        "optuna": optuna.__version__, "counts": counts,
        "best" if not multi else "front": chosen,
        "cost": {"trial_seconds": round(sum(durations), 1),
                 "train_steps": sum(t["train_steps"] or 0 for t in trials)},
        "trials": trials,
    }


def write_summary(study, storage: str, out: Path) -> dict:
    """Write study.json, study.png (two objectives or one objective's history) and study.html into ``out``."""
    from fmkit.fileio import write_json_atomic, write_text_atomic

    out = Path(out)
    summary = study_summary(study, storage)
    write_json_atomic(out / SUMMARY_NAME, json.loads(json.dumps(summary, default=str)))
    plot = _plot(summary, out / "study.png")
    write_text_atomic(out / "study.html", render_html(summary, plot))
    return summary


def chosen(summary: dict) -> list[int]:
    return summary.get("front", summary.get("best", []))


def _plot(summary: dict, path: Path) -> str | None:
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE" and t["values"]]
    if not complete:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = summary["objectives"]
    marked = set(chosen(summary))
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    if len(names) >= 2:
        for trial in complete:
            on = trial["number"] in marked
            axes.scatter(trial["values"][1], trial["values"][0], color="tab:blue" if on else "tab:gray",
                         edgecolors="black", s=60 if on else 35)
            axes.annotate(str(trial["number"]), (trial["values"][1], trial["values"][0]), fontsize=7,
                          textcoords="offset points", xytext=(4, 3))
        front = sorted((t for t in complete if t["number"] in marked), key=lambda t: t["values"][1])
        axes.plot([t["values"][1] for t in front], [t["values"][0] for t in front], "--", color="tab:blue",
                  label="Pareto front")
        axes.set_xlabel(names[1])
        axes.set_ylabel(names[0])
        axes.legend(loc="best")
    else:
        numbers = [t["number"] for t in complete]
        axes.scatter(numbers, [t["values"][0] for t in complete], color="tab:gray", edgecolors="black")
        for trial in (t for t in complete if t["number"] in marked):
            axes.scatter([trial["number"]], [trial["values"][0]], color="tab:blue", s=80, edgecolors="black",
                         label="best")
        pruned = [t for t in summary["trials"] if t["state"] == "PRUNED" and t.get("pruned_at")]
        if pruned:
            key = summary["objectives"][0].split(":")[0]
            axes.scatter([t["number"] for t in pruned], [t["pruned_at"].get(key) for t in pruned], marker="x",
                         color="tab:red", label="pruned (value when stopped)")
        axes.set_xlabel("trial")
        axes.set_ylabel(names[0])
        axes.legend(loc="best")
    axes.set_title(f"study {summary['study']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def render_html(summary: dict, plot: str | None) -> str:
    names = summary["objectives"] or []
    params = sorted({key for t in summary["trials"] for key in t["params"]})
    marked = set(chosen(summary))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["trial", "state", *names, *params, "seconds", "bundle"])
    rows = []
    for trial in summary["trials"]:
        values = trial["values"] or [None] * len(names)
        cells = [("★ " if trial["number"] in marked else "") + str(trial["number"]), trial["state"].lower()]
        cells += ["–" if v is None else f"{v:.4g}" for v in values]
        cells += [_text(trial["params"].get(p)) for p in params]
        cells += [_text(trial["seconds"] or trial["duration_seconds"]), trial["bundle"] or "–"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    label = "Pareto front" if "front" in summary else "best trial"
    counts = ", ".join(f"{n} {state.lower()}" for state, n in summary["counts"].items())
    style = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2430}table{border-collapse:collapse;"
             "font-size:.85rem}td,th{border:1px solid #dde2ea;padding:.3rem .5rem;text-align:right}"
             "th{background:#f3f5f9}img{max-width:60%;margin-top:1rem}")
    image = f"<img src='{plot}' alt='study plot'>" if plot else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>study {html.escape(summary['study'])}"
            f"</title><style>{style}</style></head><body><h1>fmkit tune: {html.escape(summary['study'])}</h1>"
            f"<p>Objectives {html.escape(', '.join(names))}; {counts}; storage <code>{html.escape(summary['storage'])}"
            f"</code>; trial time {summary['cost']['trial_seconds']} s, {summary['cost']['train_steps']} training "
            f"steps. ★ = {label}. Values are validation metrics and runtime measurements from each trial bundle's "
            f"manifest.</p><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{image}"
            "</body></html>")


def _text(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def read_summary(directory: Path) -> dict | None:
    """The study summary in ``directory`` (a tune --out), or None."""
    path = Path(directory) / SUMMARY_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
