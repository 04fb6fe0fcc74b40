"""The workspace registry: an embedded SQLite database of runs, stages, bundles and metrics.

Recipes record one stage per recipe stage; ``fmkit tune`` records one run per worker invocation
(recipe ``tune:<study>``) and one stage per trial (stage ``tune-trial``, cache key
``tune:<study>:<trial number>``), so ``fmkit runs`` lists every trial next to the recipes.
"""

from __future__ import annotations

import json
from pathlib import Path

from fmkit.sqlite import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, recipe TEXT NOT NULL, run_dir TEXT NOT NULL,
  status TEXT NOT NULL, started TEXT NOT NULL, finished TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS stages (
  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL,
  stage TEXT NOT NULL, cache_key TEXT NOT NULL, status TEXT NOT NULL, output TEXT,
  cached INTEGER NOT NULL DEFAULT 0, seconds REAL, summary TEXT, started TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stages_cache ON stages(cache_key, status);
CREATE TABLE IF NOT EXISTS bundles (
  digest TEXT NOT NULL, path TEXT NOT NULL, task TEXT, base_model TEXT, created TEXT NOT NULL,
  PRIMARY KEY (digest, path)
);
CREATE TABLE IF NOT EXISTS metrics (
  bundle_digest TEXT NOT NULL, split TEXT NOT NULL, name TEXT NOT NULL, value REAL,
  recorded TEXT NOT NULL, PRIMARY KEY (bundle_digest, split, name)
);
"""

HEADLINE = ("accuracy", "macro_f1", "expected_calibration_error")
TRIAL_STAGE = "tune-trial"


def trial_key(study: str, number) -> str:
    return f"tune:{study}:{number}"


class RunRegistry:
    def __init__(self, workspace: Path):
        self.path = Path(workspace) / ".fmkit" / "registry.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self):
        return connect(self.path)

    def start_run(self, name: str, recipe: str, run_dir: Path, now: str) -> int:
        with self._connect() as db:
            cursor = db.execute("INSERT INTO runs(name, recipe, run_dir, status, started) VALUES (?,?,?,?,?)",
                                (name, recipe, str(run_dir), "running", now))
            return int(cursor.lastrowid)

    def finish_run(self, run_id: int, status: str, now: str, error: str | None = None) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET status=?, finished=?, error=? WHERE id=?", (status, now, error, run_id))

    def record_stage(self, run_id: int, name: str, stage: str, key: str, status: str, output: str | None,
                     cached: bool, seconds: float, summary: dict, now: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO stages(run_id, name, stage, cache_key, status, output, cached, seconds, summary, started)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, name, stage, key, status, output, int(cached), seconds, json.dumps(summary), now),
            )

    def record_trial(self, run_id: int, study: str, number: int, status: str, bundle: str | None, seconds: float,
                     summary: dict, now: str) -> None:
        """A search trial (complete, pruned or failed) as a stage of the worker's run."""
        self.record_stage(run_id, f"trial-{number}", TRIAL_STAGE, trial_key(study, number), status, bundle, False,
                          round(seconds, 2), summary, now)

    def trials(self, study: str) -> list[dict]:
        """Every recorded trial of ``study`` (all workers, all re-runs), oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT run_id, name, status, output, seconds, summary, started FROM stages "
                              "WHERE stage=? AND cache_key LIKE ? ORDER BY id",
                              (TRIAL_STAGE, trial_key(study, "%"))).fetchall()
        return [{**dict(row), "summary": json.loads(row["summary"] or "{}")} for row in rows]

    def cached_stage(self, key: str):
        with self._connect() as db:
            return db.execute(
                "SELECT output, summary FROM stages WHERE cache_key=? AND status='done' ORDER BY id DESC LIMIT 1",
                (key,),
            ).fetchone()

    def record_bundle(self, manifest, path: Path, now: str) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO bundles VALUES (?,?,?,?,?)",
                       (manifest.content_digest, str(path), manifest.task, manifest.base_model.get("name"), now))
            for split, values in manifest.metrics.items():
                for metric in HEADLINE:
                    if isinstance(values.get(metric), (int, float)):
                        db.execute("INSERT OR REPLACE INTO metrics VALUES (?,?,?,?,?)",
                                   (manifest.content_digest, split, metric, float(values[metric]), now))

    def list_runs(self, limit: int = 20) -> list[dict]:
        with self._connect() as db:
            runs = [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))]
            for run in runs:
                run["stages"] = [
                    {**dict(s), "summary": json.loads(s["summary"] or "{}")}
                    for s in db.execute("SELECT name, stage, status, cached, seconds, output, summary FROM stages "
                                        "WHERE run_id=? ORDER BY id", (run["id"],))
                ]
        return runs
