"""fmkit tune: hyper-parameter search with Optuna; each trial an `fmkit finetune` run and a bundle.

Every `fmkit finetune` option is accepted (generated the same way, fmkit/cli/commands/finetune.py)
and fixes that setting for every trial; ``--space`` names what the trials vary.
"""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json

EPILOG = """\
examples:
  fmkit tune --model minilm --data reviews.csv --method lora --space space.yaml --trials 24 \\
             --objectives accuracy:max,latency_p95_ms:min --out runs/tune-reviews
  fmkit tune ... --out runs/tune-reviews          # again: continues the study (finished trials are kept)
  fmkit tune ... --storage postgresql://user:pw@db/optuna --study-name reviews   # one study, many machines
  fmkit report runs/tune-reviews                  # the trials on the frontier, the study's front marked

space.yaml:
  learning_rate: {low: 1.0e-4, high: 3.0e-3, log: true}
  lora_rank: {choices: [4, 8, 16]}
  epochs: {low: 1, high: 4}
  quantize: {choices: [false, true]}"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from fmkit.tune.objectives import OBJECTIVES
    from fmkit.tune.space import PARAMETERS

    parser = subparsers.add_parser(
        "tune",
        help="hyper-parameter search with Optuna (TPE / NSGA-II, pruning) over accuracy, latency, size, ε, fairness",
        usage="fmkit tune --data PATH|NAME --space SPACE.yaml --out OUT [finetune options] [options]",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="the study's folder: trials/<n> bundles, study.db, study.json/html")
    parser.add_argument("--config", help="YAML with finetune config fields for every trial; flags override it")
    parser.add_argument("--privacy", choices=["none", "dp"], default="none", help="dp: every trial trains with DP-SGD")
    search = parser.add_argument_group("search")
    search.add_argument("--space", required=True, metavar="YAML",
                        help="the search space: parameter -> {low, high[, log][, step]} or {choices: [...]}; "
                        "parameters: " + ", ".join(PARAMETERS))
    search.add_argument("--trials", type=int, default=20, help="finished trials (complete or pruned) the study should "
                        "hold; a re-run or another worker runs only the missing ones (default: 20)")
    search.add_argument("--objectives", default="accuracy:max", metavar="NAME[:max|min],...",
                        help="manifest measurements to optimise (default: accuracy:max). One: TPE; several: NSGA-II. "
                        "Valid: " + ", ".join(OBJECTIVES) + ". accuracy/macro_f1/log_loss are on the validation split")
    search.add_argument("--storage", metavar="URL", help="Optuna RDB URL (default: sqlite:///OUT/study.db)")
    search.add_argument("--study-name", help="study name in the storage (default: OUT's folder name)")
    search.add_argument("--sampler", choices=["auto", "tpe", "nsga2", "random"], default="auto",
                        help="auto: TPE for one objective, NSGA-II for several")
    search.add_argument("--pruner", choices=["median", "asha", "none"], default="median",
                        help="stop trials whose validation metric trails the study's at the same evaluation")
    search.add_argument("--sampler-seed", type=int, default=0,
                        help="sampler seed (give each concurrent worker its own)")
    search.add_argument("--startup-trials", type=int, default=4, help="finished trials before pruning starts")
    search.add_argument("--warmup-evaluations", type=int, default=1, help="evaluations of a trial before it may be pruned")
    search.add_argument("--latency-samples", type=int, default=100, help="single-text calls timed per trial for "
                        "latency objectives (on validation texts)")
    search.add_argument("--measure-threads", type=int, help="runtime threads when measuring latency")
    search.add_argument("--fairness-sensitive", metavar="A,B,...", help="group columns audited for fairness_gap")
    search.add_argument("--workspace", default=".", help="where the run registry lives (.fmkit/registry.sqlite)")
    add_json_flag(parser)
    parser.defer(_add_finetune_options)
    return parser


def _add_finetune_options(parser) -> None:
    from fmkit.cli.commands.finetune import add_config_options

    add_config_options(parser)
    parser.description = (
        "Search hyper-parameters with Optuna: each trial is an `fmkit finetune` run (optionally followed by "
        "distillation and int8 quantization) written as a bundle OUT/trials/<n>, judged by the manifest measurements "
        "--objectives names (TPE for one, NSGA-II for several), pruned early on its validation metric. The study "
        "lives in an RDB (SQLite in OUT by default): re-running continues it and several workers may share it.\n\n"
        "Every finetune option below fixes that setting for all trials; --space names the ones that vary.\n\n"
        + parser.description)


def tune_config(args):
    from fmkit.cli.common import comma_list
    from fmkit.tune.config import TuneConfig

    return TuneConfig(
        trials=args.trials, objectives=args.objectives, storage=args.storage, study_name=args.study_name,
        sampler=args.sampler, pruner=args.pruner, sampler_seed=args.sampler_seed, startup_trials=args.startup_trials,
        warmup_evaluations=args.warmup_evaluations, latency_samples=args.latency_samples,
        measure_threads=args.measure_threads,
        fairness_sensitive=comma_list(args.fairness_sensitive) if args.fairness_sensitive else [])


def run(args) -> int:
    import sys

    from fmkit.cli.commands.finetune import build_config
    from fmkit.errors import BadInputError
    from fmkit.finetune import FinetuneConfig
    from fmkit.tune.run import run_tune
    from fmkit.tune.space import read_space

    if args.overwrite:
        raise BadInputError("fmkit tune continues its study and never replaces trial bundles; to start afresh use "
                            "another --out (or --study-name)")
    cfg = tune_config(args)
    args.config_model = FinetuneConfig
    base = build_config(args)
    space = read_space(args.space)
    summary = run_tune(cfg, base, args.out, space, workspace=args.workspace, keep_checkpoints=args.keep_checkpoints,
                       echo=lambda line: print(line, file=sys.stderr))
    if args.json:
        print_json(summary)
        return 0
    print(f"study {summary['study']} ({summary['storage']}): "
          + ", ".join(f"{n} {state.lower()}" for state, n in summary["counts"].items())
          + f"; this worker ran {summary['worker']['ran']}")
    chosen = summary.get("front", summary.get("best", []))
    label = "Pareto front" if "front" in summary else "best trial"
    by_number = {t["number"]: t for t in summary["trials"]}
    for number in chosen:
        trial = by_number[number]
        values = ", ".join(f"{name} {value:.4g}" for name, value in zip(summary["objectives"], trial["values"]))
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial["params"].items())
        print(f"{label}: trial {number}: {values} ({params}) -> {trial['bundle']}")
    print(f"wrote {args.out}/study.json, {args.out}/study.html; `fmkit report {args.out}` puts the trials on the frontier")
    return 0
