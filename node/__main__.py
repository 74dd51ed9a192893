"""``python -m node serve ...``: the node's commands of ``sealrelay`` (``node serve``,
``admin invite``, ``dev run``) without the ``node``/``admin``/``dev`` prefix."""

from __future__ import annotations

import argparse
import sys

from node import cli
from node.errors import CommandError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node", description="sealrelay relay node")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve one domain on HOST:PORT")
    serve.add_argument("--domain")
    serve.add_argument("--listen", metavar="HOST:PORT")
    serve.add_argument("--data", metavar="DIR")
    serve.add_argument("--config", metavar="FILE")
    serve.set_defaults(handler=cli.serve)
    invite = sub.add_parser("invite", help="print a one-time enrollment code")
    invite.add_argument("name")
    invite.add_argument("--data", required=True, metavar="DIR")
    invite.add_argument("--ttl", type=int, default=7 * 86400)
    invite.set_defaults(handler=cli.admin_invite)
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except CommandError as exc:  # as sealrelay.cli prints it
        print(f"sealrelay: {exc.code}: {exc.message}", file=sys.stderr)
        return exc.exit_status
    return status


if __name__ == "__main__":
    sys.exit(main())
