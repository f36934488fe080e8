"""The ``lowlight`` command.

Each subcommand lives in its own module and is imported only when it runs, so ``lowlight
--help`` and the client commands never pay for (or require) torch. A subcommand module
provides ``register(subparsers)`` that adds its parser and sets ``handler`` to a
function ``(args) -> int`` (the exit status).

Exit statuses: 0 success, 1 some work failed, 2 usage error (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from lowlight import __version__

#: Modules that register subcommands, in the order ``--help`` lists them.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "lowlight.enhance_cmd",
    "lowlight.train_cmd",
    "lowlight.train_exposure_cmd",
    "lowlight.eval_cmd",
    "installer.cli",
    "worker.cli",
    "plugin.batch_cmd",
    "plugin.panel.app",
)

DESCRIPTION = (
    "Enhance Low Light: turn dark, noisy photos into natural, well-exposed ones with the "
    "deep hybrid network of Ren et al. (IEEE TIP 2019)."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="lowlight", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lowlight`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("lowlight: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (``lowlight worker status | head -3``): stop
        # quietly, and keep Python from complaining again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
