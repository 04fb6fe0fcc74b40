"""The study: Optuna's RDB storage (SQLite in OUT by default), the sampler, and one worker's loop.

A study is identified by (storage URL, study name). Re-running ``fmkit tune`` with the same ``--out``
(or ``--storage``/``--study-name``) continues it: finished trials (complete or pruned) count toward
``--trials`` and are never re-run; a trial left RUNNING by a killed worker stops sending heartbeats,
is marked FAIL after the grace period and its parameters are retried once. Several worker processes
(on one machine with the SQLite file, on several with a PostgreSQL/MySQL URL) share one study: each
runs trials until the study holds ``--trials`` finished ones (a worker that started a trial just before
the count was reached finishes it, so a study may end with up to workers-1 extra trials).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fmkit.errors import BadInputError
from fmkit.store import redact_url

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 90


def default_storage(out: Path) -> str:
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"



def open_storage(url: str):
    """Optuna's RDBStorage on ``url``; an unreachable or malformed URL is a clear error, before any trial."""
    import optuna

    if "://" not in url:
        raise BadInputError(f"--storage {url!r} is not a database URL; use sqlite:///path/study.db or "
                            "postgresql://user:password@host/db")
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise BadInputError(f"--storage {url}: the folder {folder} does not exist; create it or pick another path")
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    import warnings

    def connect():
        with warnings.catch_warnings():  # heartbeats are marked experimental; they are what resuming relies on
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))

    try:
        for attempt in range(3):
            try:
                with _creation_lock(url):
                    return connect()
            except Exception as error:  # two workers creating the tables at once: the loser sees them exist
                if "already exists" not in str(error) or attempt == 2:
                    raise
    except ModuleNotFoundError as error:
        hint = ""
        if url.startswith("postgresql://") and error.name == "psycopg2":
            hint = "; psycopg (3) is the PostgreSQL driver fmkit uses: write postgresql+psycopg://..."
        raise BadInputError(f"--storage {redact_url(url)}: the database driver {error.name!r} is not installed{hint}") from None
    except Exception as error:  # sqlalchemy's OperationalError, ArgumentError, NoSuchModuleError...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadInputError(f"--storage {redact_url(url)} is unreachable or not a database Optuna can use: {first}. "
                            "Check the URL, the server and its credentials") from None


@contextlib.contextmanager
def _creation_lock(url: str):
    """Serialise creating a SQLite study's tables among this machine's workers (SQLAlchemy's create_all races)."""
    if not url.startswith("sqlite:///"):
        yield
        return
    import fcntl

    with open(url.removeprefix("sqlite:///") + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_sampler(cfg, finished: int):
    """TPE (one objective) or NSGA-II (several), or what --sampler names; seeded per (seed, trials so far)."""
    import optuna

    seed = cfg.sampler_seed + finished
    if cfg.sampler_name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler_name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, cfg.trials // 3)))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, cfg.trials // 3)),
                                      multivariate=True, constant_liar=True)


FINISHED_STATES = ("COMPLETE", "PRUNED")


def finished_trials(study) -> list:
    import optuna

    states = tuple(getattr(optuna.trial.TrialState, name) for name in FINISHED_STATES)
    return study.get_trials(deepcopy=False, states=states)


def open_study(cfg, out: Path, space: dict):
    """Create the study or load it; a study made with other objectives is refused, a changed space is reported."""
    import optuna

    from fmkit.tune.pruning import make_pruner

    url = cfg.storage or default_storage(out)
    name = cfg.study_name or Path(out).resolve().name
    storage = open_storage(url)
    objectives = [str(spec) for spec in cfg.objectives]
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get("objectives")
        if stored is not None and stored != objectives:
            raise BadInputError(f"study {name!r} in {redact_url(url)} optimises {', '.join(stored)}, not "
                                f"{', '.join(objectives)}; keep its --objectives, or start another study with "
                                "another --out or --study-name")
    finished = len(finished_trials(existing)) if existing is not None else 0
    with _creation_lock(url):
        study = optuna.create_study(storage=storage, study_name=name, directions=cfg.directions, load_if_exists=True,
                                    sampler=make_sampler(cfg, finished), pruner=make_pruner(cfg))
    notes = []
    if study.user_attrs.get("objectives") is None:  # a new study (or one made outside fmkit, e.g. to enqueue trials)
        study.set_user_attr("objectives", objectives)
    if study.user_attrs.get("space") is None:
        study.set_user_attr("space", space)
    elif study.user_attrs["space"] != space:
        notes.append(f"the search space differs from the one study {name!r} started with; earlier trials keep "
                     "their values (Optuna samples the new space from here on)")
        study.set_user_attr("space", space)
    return study, redact_url(url), notes


def run_worker(study, plan, trials: int, echo) -> dict:
    """Run trials of ``study`` until it holds ``trials`` finished ones; returns this worker's counts."""
    import optuna

    from fmkit.errors import TrainingDivergedError
    from fmkit.tune.trial import run_trial

    already = len(finished_trials(study))
    remaining = max(0, trials - already)
    if remaining == 0:
        echo(f"study {study.study_name!r} already holds {already} finished trials (--trials {trials}): nothing to run")
        return {"ran": 0, "already": already}
    echo(f"study {study.study_name!r}: {already} finished trials, running up to {remaining} more "
         f"(worker pid {os.getpid()})")
    states = tuple(getattr(optuna.trial.TrialState, name) for name in FINISHED_STATES)
    before = {t.number for t in finished_trials(study)}  # an enqueued (waiting) trial is run by whoever takes it
    study.optimize(lambda trial: run_trial(plan, trial), n_trials=remaining,
                   callbacks=[optuna.study.MaxTrialsCallback(trials, states=states)],
                   catch=(TrainingDivergedError,), gc_after_trial=True, show_progress_bar=False)
    mine = [t for t in study.get_trials(deepcopy=False)
            if t.number not in before and t.user_attrs.get("worker") == plan.worker]
    return {"ran": len(mine), "already": already}
