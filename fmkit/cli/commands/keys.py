"""fmkit keys: create, list and revoke API keys for `fmkit serve`."""

from __future__ import annotations

import argparse

from fmkit.cli.common import add_json_flag, print_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "keys", help="create, list or revoke API keys for fmkit serve",
        description="API keys for `fmkit serve`. A key is shown once at creation; only a salted hash is stored "
        "(WORKSPACE/.fmkit/serve.sqlite, or the database --store names). Roles: admin (keys, load/unload), "
        "predict (predict on its models), read (list models, metrics).",
        epilog="example: fmkit keys create --role predict --models reviews   # or: ... --store "
        "postgresql://fmkit@db:5432/fmkit (the store the replicas' fmkit serve --store names)",
    )
    parser.add_argument("action", choices=["create", "list", "revoke"])
    parser.add_argument("key_id", nargs="?", help="the key id to revoke")
    parser.add_argument("--role", help="admin, predict or read (create)")
    parser.add_argument("--models", help="comma-separated models the key may use, or '*' for all (default: all); "
                        "an empty list is an error, never all")
    parser.add_argument("--note", help="a note stored with the key")
    parser.add_argument("--workspace", default=".", help="workspace holding .fmkit/serve.sqlite (default: .)")
    from fmkit.cli.commands.serve import add_store_argument

    add_store_argument(parser)  # the same store `fmkit serve --store` reads: every worker and replica sees the key
    add_json_flag(parser)
    return parser


def run(args) -> int:
    from fmkit.errors import BadInputError
    from fmkit.serve.keys import KeyStore

    store = KeyStore(args.workspace, store=args.store)
    if args.action == "create":
        if not args.role:
            raise BadInputError("keys create needs --role admin|predict|read")
        models = None if args.models is None else [m.strip() for m in args.models.split(",")]
        token, record = store.create(args.role, models, args.note)
        if args.json:
            print_json({"key": token, "id": record.id, "role": record.role, "models": list(record.models)})
        else:
            print(token)
            print(f"(id {record.id}, role {record.role}, models {', '.join(record.models)}; shown once: store it now)")
    elif args.action == "list":
        keys = store.list()
        if args.json:
            print_json([k.__dict__ for k in keys])
        for key in keys if not args.json else []:
            print(f"{key.id}  {key.role:8s} {','.join(key.models):20s} created {key.created}"
                  f"{'  REVOKED ' + key.revoked if key.revoked else ''}")
    else:
        if not args.key_id:
            raise BadInputError("keys revoke needs the key id (see `fmkit keys list`)")
        record = store.revoke(args.key_id)
        print(f"revoked {record.id}")
    return 0
