"""``fmkit`` command line. Building the parser imports no torch, so ``--help`` is instant.

Exit codes: 0 ok, 1 a check failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fmkit._version import __version__

# Subcommands in the order of the pipeline; each module defines add_parser() and run().
COMMANDS = ["anonymize", "pretrain", "finetune", "evaluate", "predict", "compress", "export", "compare", "audit", "explain", "mitigate", "card",
            "report", "gate", "serve", "keys", "info", "run", "runs"]

DESCRIPTION = """\
fmkit: a pretrained foundation model + your data -> a measured, trustworthy deployment.

Everything runs offline: models come from local directories or packages
(built-in: minilm), data from local files or packages (built-in: rotten-tomatoes, adult).

examples:
  fmkit anonymize tickets.csv --out tickets.anon.csv
  fmkit finetune --data reviews.csv --method lora --out models/reviews-lora
  fmkit evaluate models/reviews-lora --split test
  fmkit predict models/reviews-lora "a warm, funny, beautifully acted film"
  fmkit run recipes/quickstart.yaml

exit codes: 0 ok, 1 a check failed, 2 bad input.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmkit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fmkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"fmkit.cli.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from fmkit.errors import FmkitError
    from fmkit.offline import enforce_offline

    enforce_offline()
    try:
        if getattr(args, "no_verify", False):
            from fmkit.bundle.verify import trust_unverified

            with trust_unverified():
                return int(args.handler(args) or 0)
        return int(args.handler(args) or 0)
    except FmkitError as error:
        print(f"fmkit {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"fmkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        from pydantic import ValidationError

        if isinstance(error, ValidationError):
            from fmkit.validation import format_validation_error

            print(f"fmkit {args.command}: {format_validation_error(error, getattr(args, 'config_model', None))}",
                  file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
