"""The node's commands, called by ``sealrelay.cli`` with parsed arguments (exit status back).

    sealrelay node serve [--domain D] [--listen HOST:PORT] [--udp-listen HOST:PORT]
                         [--data DIR] [--config FILE]
        serves until SIGTERM/SIGINT; once listening prints one JSON line on stdout:
        {"event": "listening", "url": "http://HOST:PORT", "domain": D}. Any key may come
        from the file or a ``SEALRELAY_*`` variable instead of a flag (``node.config``)
    sealrelay admin invite NAME --data DIR [--ttl SECONDS]
        prints a one-time enrollment code for NAME alone on stdout line 1 (works while the
        node runs: it opens the data directory's store directly); refuses, writing nothing,
        a directory without a node's data and a name that already has an account
    sealrelay dev run [--data DIR] [--domain D] [--listen HOST:PORT]
        ``make run``: keys and store on first start, invites for alice and bob, the client
        commands to try (``node.devhints``), then serves
    sealrelay dev up [--domains 2|3] [--data DIR] [--base-port PORT]
        a local federation of ``node serve`` processes (``node.devup``)

A user's mistake raises :class:`~node.errors.CommandError` (its code in ``node.errors``),
which ``sealrelay.cli`` prints as one line. Exit status: 0 after a clean shutdown, 2 for
invalid configuration or arguments, 1 when the node failed (for example the port is taken).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import trio

from node import accounts, devhints, devup, heap, logs
from node.config import ENV_PREFIX, Config, load_config, parse_listen, parse_sentinels
from node.errors import (
    ADMIN_ACCOUNT_EXISTS,
    ADMIN_NO_NODE,
    NODE_DATA_DIR,
    CommandError,
    ConfigError,
    first_leaf,
)
from node.keys import KEY_FILE
from node.server import NodeHandle, run_node
from node.store import Store, open_store, sqlite_path

T = TypeVar("T")

EXIT_OK: Final = 0
DEV_USERS: Final = ("alice", "bob")
DEV_INVITE_TTL: Final = 7 * 86400


def serve(args: argparse.Namespace) -> int:
    return _run(_config(args), _announce)


def admin_invite(args: argparse.Namespace) -> int:
    if not accounts.valid_name(args.name):
        raise ConfigError(f"invalid account name {args.name!r}")
    if args.ttl <= 0:
        raise ConfigError("--ttl must be positive")
    code = run_trio(_add_invite, args.data, args.name, args.ttl)
    print(code, flush=True)
    return EXIT_OK


def dev_run(args: argparse.Namespace) -> int:
    config = with_dev_calls(_config(args, store="sqlite"))
    first_start = not (Path(config.data_dir) / KEY_FILE).exists()

    async def welcome(handle: NodeHandle) -> None:
        _announce(handle)
        codes = {}
        if first_start:
            for name in DEV_USERS:
                codes[name] = await handle.relay.add_invite(name, DEV_INVITE_TTL)
        print(devhints.run_instructions(handle.url, config, codes), flush=True)

    return _run(config, welcome)


def dev_up(args: argparse.Namespace) -> int:
    """``sealrelay dev up``: see :mod:`node.devup`."""

    def invite(data_dir: str, name: str) -> str:
        return run_trio(_add_invite, data_dir, name, DEV_INVITE_TTL)

    return devup.run(Path(args.data), args.domains, args.base_port, invite)


def with_dev_calls(config: Config) -> Config:
    """A development node serves calls: unless ``udp_listen`` is configured, call media
    listens on the UDP port of the same number as the TCP listen address (UDP and TCP
    ports are separate spaces)."""
    if config.udp_listen:
        return config
    host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
    return dataclasses.replace(config, udp_listen=f"{host}:{config.listen_port}")


def run_trio(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``trio.run(fn, *args)``, with a :class:`CommandError` that reaches it inside trio's
    exception groups raised alone (then ``sealrelay.cli`` prints it as one line)."""
    try:
        return trio.run(fn, *args)
    except BaseExceptionGroup as group:
        matched, rest = group.split(CommandError)
        if matched is None or rest is not None:
            raise
        raise first_leaf(matched) from None


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    """The configuration: defaults < ``--config`` file < ``SEALRELAY_*`` < flags given."""
    overrides: dict[str, Any] = {"domain": args.domain, "data_dir": args.data, **extra}
    if args.listen is not None:
        host, port = parse_listen(args.listen)
        overrides |= {"listen_host": host, "listen_port": port}
    if getattr(args, "udp_listen", None) is not None:
        overrides["udp_listen"] = args.udp_listen
    return load_config(getattr(args, "config", None), overrides=overrides)


def _run(config: Config, on_listening: Any) -> int:
    _check_data_dir(config.data_dir)
    logs.setup(config.log_level)
    run_trio(_main, config, on_listening)
    return EXIT_OK


def _check_data_dir(path: str) -> None:
    """The data directory exists (created, mode 0700) and this user may use it."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        message = f"cannot create the data directory {path}: {exc.strerror}"
        raise CommandError(message, NODE_DATA_DIR) from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        message = f"the data directory {path} is not readable and writable by this user"
        raise CommandError(message, NODE_DATA_DIR)


async def _main(config: Config, on_listening: Any) -> None:
    async with trio.open_nursery() as nursery:
        handle: NodeHandle = await nursery.start(run_node, config)
        heap.settle()  # startup objects frozen before the first client's request (node.heap)
        result = on_listening(handle)
        if result is not None:
            await result


def _announce(handle: NodeHandle) -> None:
    line = {"event": "listening", "url": handle.url, "domain": handle.relay.domain}
    print(json.dumps(line), flush=True)


async def _add_invite(data_dir: str, name: str, ttl: int) -> str:
    """A code for ``name`` in the node's store; refused (nothing written) when the store
    holds no node or ``name`` already has an account."""
    store = await _invite_store(data_dir)
    try:
        if await store.has_account(name):
            message = f"{name!r} already has an account on this node; a code would not work"
            raise CommandError(message, ADMIN_ACCOUNT_EXISTS)
        raw = secrets.token_bytes(accounts.CODE_BYTES)
        expires = int(time.time() * 1000) + ttl * 1000
        await store.add_invite(accounts.code_hash(raw), name, expires)
    finally:
        await store.aclose()
    return accounts.format_code(raw)


async def _invite_store(data_dir: str) -> Store:
    """The node's SQLite file, or in cluster mode (``SEALRELAY_STORE=redis`` and the
    ``SEALRELAY_REDIS_*`` variables, as in the node's pods) the shared Redis."""
    if os.environ.get(ENV_PREFIX + "STORE") != "redis":
        if not sqlite_path(data_dir).is_file():
            message = f"no node's data in {data_dir}: start the node once (node serve) first"
            raise CommandError(message, ADMIN_NO_NODE)
        return await open_store("sqlite", data_dir)
    domain = os.environ.get(ENV_PREFIX + "DOMAIN") or "invite.invalid"  # unused by invites
    c = load_config(overrides={"domain": domain, "data_dir": data_dir})
    return await open_store(
        "redis",
        redis_url=c.redis_url,
        redis_sentinels=parse_sentinels(c.redis_sentinels),
        redis_master=c.redis_master,
        durability=c.durability,
    )
