"""``fmkit recommend train``: data -> baselines -> text model -> hybrid ranker -> evaluation -> one directory.

Every model is fitted on the same train split (ALS/BPR tuned on the validation slice, the hybrid
ranker trained on it) and measured side by side on the same test split and cold-item subset, so the
evaluation table compares like with like. The directory is written in a temporary sibling and
renamed into place: a run that fails or is killed leaves nothing, and an existing recommender
untouched.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from fmkit.apps.recommend.config import TrainConfig
from fmkit.errors import BadInputError


def fit_models(cfg: TrainConfig, data, workspace: Path, log=print) -> tuple[dict, dict]:
    """{name: fitted scorer} in cfg.models' order, and {name: seconds to fit}."""
    models, seconds = {}, {}
    for name in cfg.models:
        started = time.perf_counter()
        if name == "text":
            from fmkit.apps.recommend.text_model import TextInterestModel

            models[name] = TextInterestModel(cfg.text).fit(data, workspace / "text", log=log)
        elif name == "hybrid":
            from fmkit.apps.recommend.hybrid import HybridRanker

            components = {other: model for other, model in models.items()}
            models[name] = HybridRanker(components, cfg.hybrid).fit(data, log=log)
        else:
            from fmkit.apps.recommend.baselines import BASELINES

            model = BASELINES.get(name)()
            model.fit(data)  # the scorer protocol: fit(data) -> None (ALS/BPR tune on data.valid)
            models[name] = model
        seconds[name] = round(time.perf_counter() - started, 1)
        log(f"  {name}: fitted in {seconds[name]} s")
    return models, seconds


def train_recommender(cfg: TrainConfig, out: Path, *, overwrite: bool = False, log=print) -> dict:
    """Train, evaluate and write the recommender directory ``out`` (atomically); returns its manifest."""
    from fmkit.apps.recommend.catalog import write_catalog
    from fmkit.apps.recommend.data import load_interactions
    from fmkit.apps.recommend.evaluation import evaluate_all
    from fmkit.apps.recommend.store import KIND, MODELS_DIR, SCHEMA, write_manifest
    from fmkit.fileio import atomic_directory

    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    data = load_interactions(cfg.data, log=log)
    out.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=f".{out.name}.work-", dir=out.parent))
    try:
        models, fit_seconds = fit_models(cfg, data, workspace, log)
        log("evaluating every model on the test split and the cold items")
        evaluation = evaluate_all(models, data)
        manifest = {
            "schema_version": SCHEMA, "kind": KIND, "fmkit_version": _version(), "name": cfg.name or out.name,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": cfg.model_dump(mode="json"),
            "models": list(models), "serving_model": cfg.serving_model, "fit_seconds": fit_seconds,
            "model_facts": {name: _facts(model) for name, model in models.items()},
            **evaluation, "added_items": [], "train_seconds": None,
        }
        with atomic_directory(out, overwrite=overwrite) as tmp:
            summary = write_catalog(tmp, data)
            manifest["data"] = {"source": data.facts.get("source"), "drops": data.drops, "facts": data.facts, **summary}
            manifest["trained_items"] = summary["items"]
            if "text" in models:
                cache_known_user_queries(models["text"], tmp, log)
            for name, model in models.items():
                model.save(tmp / MODELS_DIR / name)
            manifest["train_seconds"] = round(time.perf_counter() - started, 1)
            write_manifest(tmp, manifest)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    from fmkit.apps.recommend.report import write_report

    write_report(out)
    log(f"recommender {manifest['name']!r} written to {out} ({summary['items']} items, {summary['users']} users, "
        f"{manifest['train_seconds']} s)")
    return manifest


def cache_known_user_queries(text_model, directory: Path, log=print) -> None:
    """Encode every known user's serving query (their whole stored history, as ``Recommender`` reads it from
    ``directory``'s catalog) into the text model, so ``recommend(user=...)`` runs no encoder (user_queries.py)."""
    from fmkit.apps.recommend.recommender import histories_of, read_catalog

    started = time.perf_counter()
    catalog, users, interactions = read_catalog(directory)
    histories = histories_of(users, [entry["id"] for entry in catalog], interactions)
    known = [user for user in users if histories.get(user)]
    text_model.cache_user_queries(known, [histories[user] for user in known])
    log(f"text model: {len(text_model.user_queries_)} known users' queries encoded for serving "
        f"({time.perf_counter() - started:.1f} s)")


def _facts(model) -> dict:
    facts = getattr(model, "facts_", None)
    return dict(facts) if isinstance(facts, dict) else {}


def _version() -> str:
    from fmkit._version import __version__

    return __version__
