"""Entry point of the ``sealrelay`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sealrelay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="developer conveniences")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    dev_sub.add_parser("run", help="start a node on the embedded default")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dev" and args.dev_command == "run":
        print("sealrelay: the relay node is not built yet (see the node issue); not yet.")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
