"""``sealrelay client ...``: register, send, receive, verify, info, history, and
``group create|add|remove|send|list`` (a group is named by its id in hex, which ``group
create`` prints; a received group message prints as a one-to-one one plus ``"group"``).

Every command takes ``--home DIR``: the account's encrypted state store (``state.db``)
and, by default, the directory received attachments are saved to (``attachments/``).
The store's passphrase comes from ``$SEALRELAY_PASSPHRASE`` or, if unset, a prompt.

Output is JSON, one object per line, on stdout; an error is one line on stderr
(``sealrelay: <code>: <message>``) and a non-zero exit status: 1 for a refusal or a
failure, 2 for a usage error. Nothing printed ever holds a key, a token or the passphrase.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import trio

from client import persist
from client.app import Client
from client.domaintrust import pinned_home_roots
from client.enroll import enroll
from client.errors import ClientError, Refused, StoreError
from client.groupnet import describe
from client.inbox import StoredMessage
from client.safety import format_safety_number, identity_fingerprint
from client.store.sqlite import SqliteStore
from suites.rootsig import fingerprint

PASSPHRASE_ENV: Final = "SEALRELAY_PASSPHRASE"  # noqa: S105 - the variable's name
TIMEOUT_ENV: Final = "SEALRELAY_TIMEOUT"
STORE_FILE: Final = "state.db"
ATTACHMENTS_DIR: Final = "attachments"
HOME_MODE: Final = 0o700
DEFAULT_TIMEOUT: Final = 120.0
"""Seconds ``send`` waits for the node to acknowledge, and ``receive`` for the backlog."""

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class UsageError(Exception):
    pass


# --- entry points (called by sealrelay.cli) -----------------------------------------------------


def register(args: argparse.Namespace) -> int:
    return _main(_register, args)


def send(args: argparse.Namespace) -> int:
    return _main(_send, args)


def receive(args: argparse.Namespace) -> int:
    return _main(_receive, args)


def verify(args: argparse.Namespace) -> int:
    return _main(_verify, args)


def info(args: argparse.Namespace) -> int:
    return _main(_info, args)


def history(args: argparse.Namespace) -> int:
    return _main(_history, args)


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


def _main(command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    try:
        return trio.run(command, args)
    except UsageError as exc:
        return _fail("usage", str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as group:
        found = _first_client_error(group)
        if found is None:
            raise
        return _fail(found.code, str(found), EXIT_FAILED)
    except ClientError as exc:
        return _fail(exc.code, str(exc), EXIT_FAILED)


def _first_client_error(group: BaseExceptionGroup[Any]) -> ClientError | None:
    for exc in group.exceptions:
        if isinstance(exc, ClientError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_client_error(exc)
            if found is not None:
                return found
    return None


def _fail(code: str, message: str, status: int) -> int:
    print(f"sealrelay: {code}: {message}", file=sys.stderr)
    return status


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- the store --------------------------------------------------------------------------------


def _passphrase() -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        value = getpass.getpass("passphrase for the client state: ")
    if not value:
        raise UsageError("an empty passphrase is not allowed")
    return value


def _open_store(home: Path, *, create: bool) -> SqliteStore:
    path = home / STORE_FILE
    if create:
        home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    elif not path.exists():
        raise UsageError(f"no account in {home}: run 'sealrelay client register' first")
    return SqliteStore.open(path, _passphrase())


def _timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds") from None


def _load(args: argparse.Namespace, store: SqliteStore) -> Client:
    save_dir = Path(getattr(args, "save_dir", None) or Path(args.home) / ATTACHMENTS_DIR)
    return Client.load(store, save_dir=save_dir)


# --- commands ---------------------------------------------------------------------------------


async def _register(args: argparse.Namespace) -> int:
    if "@" not in args.address:
        raise UsageError("the address must be NAME@DOMAIN")
    store = _open_store(Path(args.home), create=True)
    try:
        if persist.has_device(store):
            raise StoreError(f"{args.home} already holds an account")
        device = await enroll(
            store,
            args.address,
            args.node,
            args.code,
            args.suite,
            introductions=not args.no_introductions,
        )
    finally:
        store.close()
    _emit({"address": device.address, "device": device.device_id})
    return EXIT_OK


async def _send(args: argparse.Namespace) -> int:
    files = [Path(p) for p in args.attach]
    for path in files:
        if not path.is_file():
            raise UsageError(f"not a file: {path}")
    if args.expire is not None and args.expire <= 0:
        raise UsageError("--expire takes a positive number of seconds")
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        async with client.online():
            with trio.fail_after(_timeout()):
                result = await client.send(args.to, args.text, files, args.expire)
    except trio.TooSlowError:
        return _fail("client.timeout", "the node did not acknowledge in time", EXIT_FAILED)
    finally:
        store.close()
    for eid, refused in result.failed.items():
        _fail(refused.node_code, f"envelope {eid.hex()} refused: {refused}", EXIT_FAILED)
    _emit({"to": args.to, "eids": [eid.hex() for eid in result.eids]})
    return EXIT_FAILED if result.failed else EXIT_OK


async def _receive(args: argparse.Namespace) -> int:
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        _print_new(client, settled_only=False)  # saved by an earlier run, not yet shown
        async with client.online():
            with trio.move_on_after(_timeout()):
                await client.drained.wait()
            _print_new(client, settled_only=True)
            deadline = trio.current_time() + max(0.0, args.wait)
            while trio.current_time() < deadline:
                with trio.move_on_at(deadline):
                    await client.changed.wait()
                _print_new(client, settled_only=True)
        _print_new(client, settled_only=False)
    finally:
        store.close()
    return EXIT_OK


def _print_new(client: Client, *, settled_only: bool) -> None:
    for msg in client.inbox.unshown():
        if settled_only and not msg.settled:
            continue
        _emit(message_json(msg, client.message_group(msg)))
        client.inbox.mark_shown(msg)


def message_json(msg: StoredMessage, group: bytes | None = None) -> dict[str, Any]:
    """The JSON object ``receive`` and ``history`` print for one message (a group message
    has ``"group"``: the group id in hex)."""
    found = {
        "eid": msg.eid.hex(),
        "from": msg.sender,
        "device": msg.device,
        "text": msg.text,
        "sent": msg.sent,
        "received": msg.received,
        "expire": msg.expire,
        "attachments": [
            {
                "name": a.pointer.name,
                "size": a.pointer.size,
                "path": a.path,
                "sha256": a.sha256.hex() if a.sha256 is not None else None,
                "error": a.error,
            }
            for a in msg.attachments
        ],
    }
    if group is not None:
        found["group"] = group.hex()
    return found


async def _verify(args: argparse.Namespace) -> int:
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        number = client.safety_number(args.address)
        if number is None:
            raise ClientError(f"no identity known for {args.address}: exchange a message first")
        changed = client.device.identity_changed(args.address)
        accepted = False
        if changed and args.accept:
            client.accept_identity(args.address)
            changed, accepted = False, True
    finally:
        store.close()
    _emit(
        {
            "address": args.address,
            "safety_number": number,
            "formatted": format_safety_number(number),
            "identity_changed": changed,
            "accepted": accepted,
        }
    )
    return EXIT_OK


async def _info(args: argparse.Namespace) -> int:
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        device = client.device
        _emit(
            {
                "address": device.address,
                "device": device.device_id,
                "node": client.info.node_url,
                "suite": device.suite.name,
                "identity_fingerprint": identity_fingerprint(device.identity.public).hex(),
                "home_roots": _home_roots(client),
                "certificate_expires": device.certificate.body.expires,
                "outbox": len(client.outbox),
            }
        )
    finally:
        store.close()
    return EXIT_OK


def _home_roots(client: Client) -> list[str]:
    """Fingerprints of the home agency roots pinned at enrollment (empty: none), for the
    user or an administrator to compare with the agency's published one."""
    home_doc = client.keyring.document(client.domain)
    assert home_doc is not None  # noqa: S101 - Client.load pins it
    now = int(client.clock() * 1000)
    return [fingerprint(root) for root in pinned_home_roots(client.store, home_doc, now)]


async def _history(args: argparse.Namespace) -> int:
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        client.purge_expired()
        for msg in client.inbox.messages():
            _emit(message_json(msg, client.message_group(msg)))
    finally:
        store.close()
    return EXIT_OK


# --- groups -----------------------------------------------------------------------------------


def _group_id(text: str) -> bytes:
    try:
        group_id = bytes.fromhex(text)
    except ValueError:
        group_id = b""
    if len(group_id) != 16:
        raise UsageError("GROUP is a group id: 32 hex digits, as 'group create' prints it")
    return group_id


async def _online(
    args: argparse.Namespace, action: Callable[[Client], Awaitable[dict[str, Any]]]
) -> int:
    """Run ``action`` with the client online; print its JSON; exit 1 if it has failures."""
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        async with client.online():
            with trio.fail_after(_timeout()):
                out = await action(client)
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
    async def action(client: Client) -> dict[str, Any]:
        group_id = await client.group_create(args.name, args.members)
        return {"group": group_id.hex(), "name": args.name}

    return await _online(args, action)


async def _group_add(args: argparse.Namespace) -> int:
    group_id = _group_id(args.group)

    async def action(client: Client) -> dict[str, Any]:
        failed = await client.group_change(group_id, add=args.addresses)
        return {"group": args.group, "added": args.addresses, **_failures(failed)}

    return await _online(args, action)


async def _group_remove(args: argparse.Namespace) -> int:
    group_id = _group_id(args.group)

    async def action(client: Client) -> dict[str, Any]:
        failed = await client.group_change(group_id, remove=args.addresses)
        return {"group": args.group, "removed": args.addresses, **_failures(failed)}

    return await _online(args, action)


async def _group_send(args: argparse.Namespace) -> int:
    group_id = _group_id(args.group)
    files = [Path(p) for p in args.attach]
    for path in files:
        if not path.is_file():
            raise UsageError(f"not a file: {path}")
    if args.expire is not None and args.expire <= 0:
        raise UsageError("--expire takes a positive number of seconds")

    async def action(client: Client) -> dict[str, Any]:
        result = await client.group_send(group_id, args.text, files, args.expire)
        refused = sum(1 for codes in result.partial.values() for c in codes if c not in OK_CODES)
        return {
            "group": args.group,
            "eids": [eid.hex() for eid in result.eids],
            "refused_recipients": refused,
            **_failures(result.failed),
        }

    return await _online(args, action)


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
