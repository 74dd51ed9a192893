"""``sealrelay client group create|add|remove|send|list``: GROUP is a group id in hex
(``group create`` and ``group list`` print it) or the name of a group, if no other group of
the client has that name. Output, errors and timeouts as in :mod:`client.cli`; connecting
gives up after ``CONNECT_TIMEOUT`` seconds, so a node that is down fails in seconds.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import trio

from client.app import Client
from client.cli import (
    CONNECT_TIMEOUT,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    _emit,
    _fail,
    _load,
    _main,
    _open_store,
    _timeout,
)
from client.errors import Refused
from client.groupnet import describe


def group_create(args: argparse.Namespace) -> int:
    return _main(_group_create, args)


def group_add(args: argparse.Namespace) -> int:
    return _main(_group_add, args)


def group_remove(args: argparse.Namespace) -> int:
    return _main(_group_remove, args)


def group_send(args: argparse.Namespace) -> int:
    return _main(_group_send, args)


def group_list(args: argparse.Namespace) -> int:
    return _main(_group_list, args)


GROUP_ID_LEN: Final = 16


def _group_id(client: Client, text: str) -> bytes:
    """The group ``text`` names: a group id in hex, or the name of exactly one group here."""
    try:
        group_id = bytes.fromhex(text)
    except ValueError:
        group_id = b""
    if len(group_id) == GROUP_ID_LEN:
        return group_id
    named = sorted(
        ng.group_id.hex()
        for ng in client.groups.all()
        if ng.group is not None and ng.group.state.name == text
    )
    if not named:
        raise UsageError(
            f"no group named {text!r}: GROUP is a group id (32 hex digits, as 'group create'"
            " and 'group list' print it) or the name of one of your groups"
        )
    if len(named) > 1:
        raise UsageError(
            f"{len(named)} groups are named {text!r}: use the group id, one of {', '.join(named)}"
        )
    return bytes.fromhex(named[0])


GroupAction = Callable[[Client, bytes], Awaitable[dict[str, Any]]]


async def _online(args: argparse.Namespace, action: GroupAction, group: str | None = None) -> int:
    """Run ``action`` with the client online and the id of ``group`` (resolved first, by
    :func:`_group_id`; empty without one); print its JSON; exit 1 if it has failures."""
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        group_id = b"" if group is None else _group_id(client, group)
        async with client.online(connect_timeout=min(CONNECT_TIMEOUT, _timeout())):
            with trio.fail_after(_timeout()):
                out = await action(client, group_id)
    except trio.TooSlowError:
        return _fail("client.timeout", "the node did not acknowledge in time", EXIT_FAILED)
    finally:
        store.close()
    for eid, code in out.pop("failures", {}).items():
        _fail(code, f"envelope {eid} refused", EXIT_FAILED)
    _emit(out)
    return EXIT_FAILED if out.get("failed") else EXIT_OK


def _failures(failed: dict[bytes, Refused]) -> dict[str, Any]:
    return {
        "failed": len(failed),
        "failures": {eid.hex(): refused.node_code for eid, refused in failed.items()},
    }


async def _group_create(args: argparse.Namespace) -> int:
    async def action(client: Client, _: bytes) -> dict[str, Any]:
        group_id = await client.group_create(args.name, args.members)
        return {"group": group_id.hex(), "name": args.name}

    return await _online(args, action)


async def _group_add(args: argparse.Namespace) -> int:
    async def action(client: Client, group_id: bytes) -> dict[str, Any]:
        failed = await client.group_change(group_id, add=args.addresses)
        return {"group": group_id.hex(), "added": args.addresses, **_failures(failed)}

    return await _online(args, action, args.group)


async def _group_remove(args: argparse.Namespace) -> int:
    async def action(client: Client, group_id: bytes) -> dict[str, Any]:
        failed = await client.group_change(group_id, remove=args.addresses)
        return {"group": group_id.hex(), "removed": args.addresses, **_failures(failed)}

    return await _online(args, action, args.group)


async def _group_send(args: argparse.Namespace) -> int:
    files = [Path(p) for p in args.attach]
    for path in files:
        if not path.is_file():
            raise UsageError(f"not a file: {path}")
    if args.expire is not None and args.expire <= 0:
        raise UsageError("--expire takes a positive number of seconds")

    async def action(client: Client, group_id: bytes) -> dict[str, Any]:
        result = await client.group_send(group_id, args.text, files, args.expire)
        refused = sum(1 for codes in result.partial.values() for c in codes if c not in OK_CODES)
        return {
            "group": group_id.hex(),
            "eids": [eid.hex() for eid in result.eids],
            "refused_recipients": refused,
            **_failures(result.failed),
        }

    return await _online(args, action, args.group)


OK_CODES: Final = ("", "duplicate")


async def _group_list(args: argparse.Namespace) -> int:
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        for ng in client.groups.all():
            _emit(describe(ng))
    finally:
        store.close()
    return EXIT_OK
