"""fmkit info: what a bundle is, where it came from and how it measured."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, format_metrics_table, print_json

MAX_LABELS_SHOWN = 20  # a retrieval bundle's labels are its index: hundreds of document keys


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "info", help="print a bundle's manifest: lineage, metrics, digest",
        description="Print a bundle's manifest (fmkit.json), check its files against their digests and the "
        "manifest against its seal (exit 1 if either changed).",
    )
    parser.add_argument("bundle", help="bundle directory")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.bundle.seal import check_seal
    from fmkit.bundle.store import read_manifest_data
    from fmkit.bundle.verify import content_problems

    manifest, data = read_manifest_data(args.bundle)
    problems = content_problems(args.bundle, manifest)  # the manifest just read, not a second read
    seal = check_seal(data)  # "manifest edited outside fmkit", unsealed (older fmkit), unknown key, or ok
    failed = bool(problems) or seal.edited
    if args.json:
        print_json({**manifest.model_dump(mode="json"), "integrity": problems or "ok",
                    "manifest_seal": {"state": seal.state, "message": seal.message}})
        return 1 if failed else 0
    print(f"bundle        {args.bundle}")
    shown = ", ".join(manifest.labels[:MAX_LABELS_SHOWN]) + (
        f" ... ({len(manifest.labels)} in all)" if len(manifest.labels) > MAX_LABELS_SHOWN else "")
    print(f"task          {manifest.task}  labels: {shown}")
    base_digest = manifest.base_model.get("digest")  # None for a network trained from random init
    print(f"base model    {manifest.base_model.get('name')}  "
          f"({base_digest[:23] + '...' if base_digest else manifest.base_model.get('weights', 'no digest')})")
    print(f"digest        {manifest.content_digest}")
    print(f"fmkit         {manifest.fmkit_version} (schema {manifest.schema_version})")
    if manifest.data:
        print(f"data          {manifest.data.get('source')}  {manifest.data.get('split_sizes')}  "
              f"{str(manifest.data.get('fingerprint', ''))[:23]}...")
    print("lineage:")
    for index, entry in enumerate(manifest.lineage, start=1):
        method = entry.config.get("method", {})
        method = method.get("name") if isinstance(method, dict) else method
        print(f"  {index}. {entry.stage}{f' ({method})' if method else ''}  from {entry.parent}  at {entry.time}")
    if manifest.training:
        t = manifest.training
        print(f"training      {t.get('steps')} steps, {t.get('precision')}, {t.get('samples_per_second')} samples/s, "
              f"best step {t.get('best_step')}")
    if manifest.metrics:
        print("metrics:")
        from fmkit.tasks import TASKS

        keys = ("count", *TASKS.get(manifest.task).headline_metrics)  # a ranking task's own (retrieval: MRR@10...)
        table = (format_metrics_table(manifest.metrics) if all("confusion_matrix" in m for m in manifest.metrics.values())
                 else format_metrics_table(manifest.metrics, keys=keys))
        print("  " + table.replace("\n", "\n  "))
    print(f"integrity     {'ok' if not problems else '; '.join(problems)}")
    print(f"manifest      {seal.message}")
    return 1 if failed else 0
