"""``fmkit`` command line. Building the parser imports no torch, so ``--help`` is instant.

A subcommand whose options come from its config (finetune, pretrain, compress, audit) adds them
when it is used (``CommandParser.defer``): ``fmkit --help`` and the other commands never import
the configs, and ``fmkit finetune`` imports only its own.

Exit codes: 0 ok, 1 a check failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fmkit._version import __version__

# Subcommands in the order of the pipeline; each module defines add_parser() and run().
COMMANDS = ["anonymize", "pretrain", "finetune", "evaluate", "predict", "compress", "export", "compare", "audit", "explain", "mitigate", "card",
            "report", "gate", "assistant", "monitor", "recommend", "serve", "keys", "info", "tune", "run", "runs"]

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


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser that runs its deferred builders the first time it parses or prints help."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred: list = []

    def defer(self, build) -> None:
        """Run ``build(parser)`` before the first parse or help (it imports the configs it generates from)."""
        self._deferred.append(build)

    def build(self) -> "CommandParser":
        while self._deferred:
            self._deferred.pop(0)(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        return super(CommandParser, self.build()).parse_known_args(args, namespace)

    def format_usage(self) -> str:
        return super(CommandParser, self.build()).format_usage()

    def format_help(self) -> str:
        return super(CommandParser, self.build()).format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmkit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fmkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name in COMMANDS:
        module = importlib.import_module(f"fmkit.cli.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `--nproc` relaunches under torchrun
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
