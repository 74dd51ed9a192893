"""Entry point of the ``sealrelay`` command.

The command shapes below are a public surface (outside checks call them); add to them,
never rename. Each command is implemented by a function in ``node.cli`` or ``client.cli``
taking the parsed arguments and returning the exit status; this module only parses and
dispatches, importing the implementation lazily so ``sealrelay node ...`` never loads the
client and the other way round.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable
from typing import Final, Protocol, cast

Handler = Callable[[argparse.Namespace], int]

DISTRIBUTION: Final = "sealrelay"
HOME_HELP: Final = "the account's state directory (default: $SEALRELAY_HOME)"
GROUP_HELP: Final = "the group: its id (32 hex digits) or its name if no other group has it"
ATTACH_HELP: Final = "a file to attach (repeat for more)"


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _add_home(parser: argparse.ArgumentParser) -> None:
    """``--home DIR``, which ``client.cli`` defaults to ``$SEALRELAY_HOME``."""
    parser.add_argument("--home", metavar="DIR", help=HOME_HELP)


def _handler(parser: argparse.ArgumentParser, target: str) -> None:
    parser.set_defaults(handler=target)


def _add_node(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = sub.add_parser("node", help="run a relay node")
    node_sub = node.add_subparsers(dest="node_command", required=True)
    serve = node_sub.add_parser("serve", help="serve one domain on HOST:PORT")
    serve.add_argument("--domain", help="the domain this node serves (or domain in --config)")
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on (port 0: any free; or listen_host and listen_port in --config)",
    )
    serve.add_argument(
        "--udp-listen",
        metavar="HOST:PORT",
        help="UDP address for call media over QUIC (or udp_listen in --config; default: none)",
    )
    serve.add_argument("--data", metavar="DIR", help="data directory (or data_dir in --config)")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    _handler(serve, "node.cli:serve")

    admin = sub.add_parser("admin", help="operator commands on a node's data directory")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    invite = admin_sub.add_parser("invite", help="print a one-time enrollment code")
    invite.add_argument("name", help="the account name (the part before @)")
    invite.add_argument("--data", required=True, metavar="DIR", help="the node's data directory")
    invite.add_argument("--ttl", type=int, default=7 * 86400, help="seconds the code is valid")
    _handler(invite, "node.cli:admin_invite")


def _add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sealrelay keys ...``: a domain's keys (more subcommands join ``keys_sub``)."""
    keys = sub.add_parser("keys", help="create and manage a domain's keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    init = keys_sub.add_parser("init", help="generate the server keys of a domain")
    init.add_argument("--domain", required=True, help="the domain the keys serve")
    init.add_argument(
        "--suite", default="cnsa2", choices=("cnsa2", "xwing"), help="cipher suite (default cnsa2)"
    )
    init.add_argument("--data", metavar="DIR", help="write server-keys.json into DIR")
    init.add_argument("--k8s", action="store_true", help="print a Kubernetes Secret on stdout")
    init.add_argument("--name", default="sealrelay-server-keys", help="the Secret's name")
    init.add_argument("--namespace", metavar="NS", help="the Secret's namespace")
    _handler(init, "node.keys_cli:init")

    root_init = keys_sub.add_parser("root-init", help="create an agency root key (offline)")
    root_init.add_argument(
        "--out", required=True, metavar="DIR", help="where to write the root key (keep offline)"
    )
    _handler(root_init, "node.rootkeys_cli:root_init")
    certify = keys_sub.add_parser("certify", help="certify the server key with the root")
    certify.add_argument("--root", required=True, metavar="DIR", help="root-init's directory")
    certify.add_argument("--data", required=True, metavar="DIR", help="the node's data")
    certify.add_argument("--domain", required=True, help="the domain the server key serves")
    certify.add_argument("--days", type=int, default=365, help="days the certification is valid")
    _handler(certify, "node.rootkeys_cli:certify_keys")
    rotate = keys_sub.add_parser("rotate", help="rotate the server keys without downtime")
    rotate.add_argument("--data", required=True, metavar="DIR", help="the node's data directory")
    rotate.add_argument(
        "--overlap",
        type=int,
        default=30 * 86400,
        metavar="SECONDS",
        help="how long the retired key still verifies (default 30 days)",
    )
    rotate.add_argument("--root", metavar="DIR", help="certify the new key with this root")
    rotate.add_argument("--domain", help="the domain (with --root)")
    _handler(rotate, "node.rootkeys_cli:rotate")
    peer_roots = keys_sub.add_parser(
        "peer-roots", help="sign, with the root, the peer roots the domain's clients trust"
    )
    peer_roots.add_argument("--root", required=True, metavar="DIR", help="root-init's directory")
    peer_roots.add_argument("--data", required=True, metavar="DIR", help="the node's data")
    peer_roots.add_argument("--domain", required=True, help="this agency's domain")
    peer_roots.add_argument(
        "--peer", action="append", metavar="DOMAIN=FINGERPRINT", help="a peer and its root"
    )
    peer_roots.add_argument(
        "--days", type=int, default=365, help="days the statement is valid (default 365)"
    )
    _handler(peer_roots, "node.rootkeys_cli:peer_roots")
    fingerprint = keys_sub.add_parser("fingerprint", help="print a fingerprint to pin")
    fingerprint.add_argument(
        "--data", metavar="DIR", help="of the server key in this data directory"
    )
    fingerprint.add_argument("--root-public", metavar="FILE", help="of this root.pub.json")
    _handler(fingerprint, "node.rootkeys_cli:fingerprint")
    show = keys_sub.add_parser("show", help="print a node's key document as JSON, verified")
    show.add_argument("url", metavar="URL", help="the node, e.g. http://host:port")
    _handler(show, "node.keys_cli:show")


def _add_client(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    client = sub.add_parser("client", help="use an account from the command line")
    client_sub = client.add_subparsers(dest="client_command", required=True)

    register = client_sub.add_parser("register", help="enroll NAME@DOMAIN with a code")
    register.add_argument("address", metavar="NAME@DOMAIN", help="the account to enroll")
    register.add_argument("--node", required=True, metavar="URL", help="e.g. http://host:port")
    register.add_argument("--code", required=True, help="the enrollment code from the operator")
    _add_home(register)
    register.add_argument(
        "--suite", default="cnsa2", choices=("cnsa2", "xwing"), help="cipher suite (default cnsa2)"
    )
    register.add_argument(
        "--no-introductions",
        action="store_true",
        help="refuse first contact from senders without this account's delivery token",
    )
    _handler(register, "client.cli_register:register")

    send = client_sub.add_parser("send", help="send TEXT to TO_ADDRESS")
    _add_home(send)
    send.add_argument("to", metavar="TO_ADDRESS", help="the recipient, NAME@DOMAIN")
    send.add_argument("text", metavar="TEXT", help="the message text")
    send.add_argument("--attach", metavar="FILE", action="append", default=[], help=ATTACH_HELP)
    send.add_argument("--expire", type=int, metavar="SECONDS", help="disappearing message")
    _handler(send, "client.cli:send")

    receive = client_sub.add_parser("receive", help="print received messages as JSON lines")
    _add_home(receive)
    receive.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for a message if none is waiting (returns once one came)",
    )
    receive.add_argument(
        "--wait-all", action="store_true", help="keep waiting the whole --wait time"
    )
    receive.add_argument("--save-dir", metavar="DIR", help="where to save attachments")
    _handler(receive, "client.cli:receive")

    verify = client_sub.add_parser("verify", help="show the safety number with ADDRESS")
    _add_home(verify)
    verify.add_argument("address", metavar="ADDRESS", help="the peer, NAME@DOMAIN")
    verify.add_argument(
        "--accept",
        action="store_true",
        help="mark the safety number as compared (and accept a changed identity)",
    )
    _handler(verify, "client.cli:verify")

    info = client_sub.add_parser("info", help="show this account (address, device, keys)")
    _add_home(info)
    _handler(info, "client.cli:info")

    history = client_sub.add_parser("history", help="print the stored messages as JSON lines")
    _add_home(history)
    _handler(history, "client.cli:history")
    _add_group(client_sub)
    _add_calls(client_sub)
    _add_meet(client_sub)


def _add_calls(client_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sealrelay client call|answer``: a 1:1 call (``client.cli_calls``)."""
    call = client_sub.add_parser("call", help="call TO_ADDRESS and play media for --seconds")
    call.add_argument("to", metavar="TO_ADDRESS", help="the callee, NAME@DOMAIN")
    _add_home(call)
    call.add_argument("--video", action="store_true", help="video as well as audio")
    _add_seconds(call)
    _add_transport(call)
    _handler(call, "client.cli_calls:call")
    answer = client_sub.add_parser("answer", help="answer the first call that rings")
    _add_home(answer)
    answer.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for a call to ring (default 60)",
    )
    _add_seconds(answer)
    _handler(answer, "client.cli_calls:answer")


def _add_meet(client_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sealrelay client meet``: a group's meeting (``client.cli_meet``)."""
    meet = client_sub.add_parser("meet", help="start or join GROUP's meeting for --seconds")
    meet.add_argument("group", metavar="GROUP", help=GROUP_HELP)
    _add_home(meet)
    meet.add_argument("--video", action="store_true", help="video as well as audio")
    _add_seconds(meet)
    _add_transport(meet)
    _handler(meet, "client.cli_meet:meet")


def _add_transport(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=("quic", "websocket"),
        default="quic",
        help="media over QUIC (default; falls back to the WebSocket) or the WebSocket",
    )


def _add_seconds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        metavar="N",
        help="seconds of media before hanging up (default 10)",
    )


def _add_group(client_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sealrelay client group ...``: GROUP is a group id in hex or a unique group name."""
    group = client_sub.add_parser("group", help="group messaging")
    group_sub = group.add_subparsers(dest="group_command", required=True)
    create = group_sub.add_parser("create", help="create group NAME (you are its admin)")
    create.add_argument("name", metavar="NAME", help="the group's name")
    _add_home(create)
    create.add_argument(
        "--member",
        dest="members",
        metavar="ADDRESS",
        action="append",
        default=[],
        help="a first member (repeat for more)",
    )
    _handler(create, "client.cli_groups:group_create")
    for verb in ("add", "remove"):
        change = group_sub.add_parser(verb, help=f"{verb} members (admins only)")
        change.add_argument("group", metavar="GROUP", help=GROUP_HELP)
        change.add_argument("addresses", metavar="ADDRESS", nargs="+", help="members, NAME@DOMAIN")
        _add_home(change)
        _handler(change, f"client.cli_groups:group_{verb}")
    send = group_sub.add_parser("send", help="send TEXT to every member of GROUP")
    send.add_argument("group", metavar="GROUP", help=GROUP_HELP)
    send.add_argument("text", metavar="TEXT", help="the message text")
    _add_home(send)
    send.add_argument("--attach", metavar="FILE", action="append", default=[], help=ATTACH_HELP)
    send.add_argument("--expire", type=int, metavar="SECONDS", help="disappearing message")
    _handler(send, "client.cli_groups:group_send")
    listing = group_sub.add_parser("list", help="print your groups as JSON lines")
    _add_home(listing)
    _handler(listing, "client.cli_groups:group_list")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sealrelay", description="sealrelay relay and client")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_node(sub)
    _add_keys(sub)
    _add_client(sub)
    dev = sub.add_parser("dev", help="developer conveniences")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    run = dev_sub.add_parser("run", help="start a node on the embedded default")
    run.add_argument(
        "--data", default=".sealrelay/node", metavar="DIR", help="data directory (made if absent)"
    )
    run.add_argument("--domain", default="localhost", help="the domain served (default localhost)")
    run.add_argument(
        "--listen", default="127.0.0.1:7480", metavar="HOST:PORT", help="address to listen on"
    )
    _handler(run, "node.cli:dev_run")
    up = dev_sub.add_parser("up", help="start a local federation of 2 or 3 domains")
    up.add_argument(
        "--domains", type=int, default=2, choices=(2, 3), help="how many domains (default 2)"
    )
    up.add_argument(
        "--data",
        default=".sealrelay/federation",
        metavar="DIR",
        help="one data directory per domain under DIR",
    )
    up.add_argument(
        "--base-port", type=int, default=7481, help="the first node's port; the next ones follow"
    )
    _handler(up, "node.cli:dev_up")
    return parser


def _resolve(target: str) -> Handler:
    module_name, _, attr = target.partition(":")
    return cast(Handler, getattr(importlib.import_module(module_name), attr))


class UserError(Protocol):
    """An exception for a user's mistake (``node.errors.CommandError``): one line,
    ``sealrelay: CODE: MESSAGE``, on stderr and ``exit_status``, never a traceback."""

    code: str
    message: str
    exit_status: int


def _user_error(exc: BaseException) -> UserError | None:
    fields = (("code", str), ("message", str), ("exit_status", int))
    if all(isinstance(getattr(exc, name, None), kind) for name, kind in fields):
        return cast(UserError, exc)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _resolve(args.handler)
    try:
        return handler(args)
    except Exception as exc:  # a user's mistake becomes one line; anything else is a bug
        error = _user_error(exc)
        if error is None:
            raise
        print(f"sealrelay: {error.code}: {error.message}", file=sys.stderr)
        return error.exit_status


if __name__ == "__main__":
    sys.exit(main())
