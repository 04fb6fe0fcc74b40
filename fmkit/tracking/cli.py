"""The ``--mlflow`` option of the training commands: the contract ``fmkit finetune``/``pretrain`` wire in.

    add_tracking_arguments(parser)                      # adds --mlflow URI and --mlflow-experiment NAME
    callbacks = callbacks_from_args(args, stage="finetune", config=cfg.model_dump(mode="json"))
    manifest = run_finetune(cfg, out, ..., callbacks=callbacks)
    finish_tracking(callbacks, manifest)                # logs the bundle's metrics and files, ends the run

No mlflow here: the parser stays cheap, and the callback imports mlflow only when a run is asked for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fmkit.tracking.uri import HELP

DEFAULT_EXPERIMENT = "fmkit"


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mlflow URI`` (opt-in live tracking) and ``--mlflow-experiment NAME``, in their own help group."""
    group = parser.add_argument_group("experiment tracking (MLflow, opt-in)")
    group.add_argument("--mlflow", metavar="URI", default=None,
                       help=f"log params, per-step loss and learning rate, evaluations and the bundle's metrics to "
                       f"MLflow while training: {HELP}")
    group.add_argument("--mlflow-experiment", metavar="NAME", default=DEFAULT_EXPERIMENT,
                       help=f"MLflow experiment to log into (created if missing; default: {DEFAULT_EXPERIMENT})")


def callbacks_from_args(args, *, stage: str, config: dict) -> list:
    """The tracking callbacks the parsed ``args`` ask for (``[]`` without ``--mlflow``).

    Checks the URI before training starts (BadInputError naming the fix). ``config`` is the stage's
    config as plain JSON data (``cfg.model_dump(mode="json")``): it becomes the run's params.
    """
    uri = getattr(args, "mlflow", None)
    if uri is None:
        return []
    from fmkit.tracking.live import MlflowLiveCallback

    out = getattr(args, "out", None)
    return [MlflowLiveCallback(uri, stage=stage, config=config,
                               experiment=getattr(args, "mlflow_experiment", None) or DEFAULT_EXPERIMENT,
                               run_name=Path(str(out)).name if out else None, bundle_dir=out)]


def finish_tracking(callbacks, manifest=None, *, error: BaseException | None = None) -> None:
    """End every tracking run among ``callbacks``: with the bundle's metrics and files when ``manifest``
    (a ``Manifest``, or the bundle directory) is given, FAILED when ``error`` is. Other callbacks are ignored.
    A run never finished explicitly is ended when the process exits (with the bundle if one was written)."""
    for callback in callbacks or ():
        finish = getattr(callback, "finish", None)
        if finish is not None and getattr(callback, "is_tracking", False):
            finish(manifest, error=error)


def run_tracked(args, *, stage: str, config: dict, train):
    """``train(callbacks)`` with the ``--mlflow`` callbacks of ``args``; the tracking run is ended with the
    manifest ``train`` returns, or marked FAILED/KILLED when it raises (the error propagates)."""
    callbacks = callbacks_from_args(args, stage=stage, config=config)
    try:
        manifest = train(callbacks)
    except BaseException as error:
        finish_tracking(callbacks, error=error)
        raise
    finish_tracking(callbacks, manifest)
    return manifest
