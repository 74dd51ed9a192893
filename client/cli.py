"""``sealrelay client ...``: register, send, receive, verify, info, history, and
``group create|add|remove|send|list``. GROUP is a group id in hex (``group create`` and
``group list`` print it) or the name of a group, if no other group of the client has that
name; a received group message prints as a one-to-one one plus ``"group"`` (its id).

Every command takes ``--home DIR``, by default ``$SEALRELAY_HOME``: the account's encrypted
state store (``state.db``) and, by default, the directory received attachments are saved to
(``attachments/``). The store's passphrase comes from ``$SEALRELAY_PASSPHRASE`` or, if
unset, a prompt. ``register`` (``client.cli_register``) asks for a new passphrase twice,
refuses a weak one (``client.passphrase``) and leaves nothing behind when it fails.

``verify ADDRESS`` prints the safety number; ``verify ADDRESS --accept`` records that the
user compared it (``"accepted": true`` from then on, until the peer's identity key changes)
and accepts a changed identity key, which unblocks sending to it.

Output is JSON, one object per line, on stdout; an error is one line on stderr
(``sealrelay: <code>: <message>``) and a non-zero exit status: 1 for a refusal or a
failure, 2 for a usage error. Nothing printed ever holds a key, a token or the passphrase.

``$SEALRELAY_TIMEOUT`` (seconds, default 120): how long ``send`` (and the group commands)
wait for the node to acknowledge, and ``receive`` for the backlog. Connecting gives up
after ``CONNECT_TIMEOUT`` (5 s) whatever it says, so a node that is down fails in seconds.

``send`` while the node cannot be reached keeps the message, encrypted at rest in the
state store, as a draft (``client.drafts``): it prints ``"queued": true`` and exits 0;
the next command that connects (``receive``, ``send``, a group command) composes and sends
it, before anything newer; ``info`` counts it in ``"outbox"``. A queued message that the
node then refuses for good (an account that does not exist) is reported on stderr by that
command. A message with attachments is not queued (they must be uploaded first). A
message to your own address is refused (``client.self_send``): there are no notes to self.
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
from client.app import Client, SendResult
from client.domaintrust import pinned_home_roots
from client.errors import (
    BadInput,
    ClientError,
    NetworkError,
    PassphraseRequired,
    Refused,
)
from client.inbox import StoredMessage
from client.safety import format_safety_number, identity_fingerprint
from client.store.sqlite import SqliteStore
from suites.rootsig import fingerprint

PASSPHRASE_ENV: Final = "SEALRELAY_PASSPHRASE"  # noqa: S105 - the variable's name
TIMEOUT_ENV: Final = "SEALRELAY_TIMEOUT"
HOME_ENV: Final = "SEALRELAY_HOME"
STORE_FILE: Final = "state.db"
ATTACHMENTS_DIR: Final = "attachments"
HOME_MODE: Final = 0o700
DEFAULT_TIMEOUT: Final = 120.0
"""Seconds ``send`` waits for the node to acknowledge, and ``receive`` for the backlog
(``$SEALRELAY_TIMEOUT`` overrides it)."""
CONNECT_TIMEOUT: Final = 5.0
"""Seconds a command tries to connect before it gives up: a node that is down (connection
refused) fails in seconds; ``send`` then keeps the message as a draft."""

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class UsageError(Exception):
    pass


# --- entry points (called by sealrelay.cli) -----------------------------------------------------


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


def _main(command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    try:
        _default_home(args)
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
        return _fail(exc.code, str(exc), EXIT_USAGE if isinstance(exc, BadInput) else EXIT_FAILED)


def _default_home(args: argparse.Namespace) -> None:
    """Fill in ``args.home`` from ``$SEALRELAY_HOME`` when ``--home`` was not given."""
    if getattr(args, "home", None) is None:
        home = os.environ.get(HOME_ENV)
        if not home:
            raise UsageError(f"give --home DIR or set {HOME_ENV}")
        args.home = home


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
        if not (sys.stdin and sys.stdin.isatty()):  # None when stdin is closed
            raise PassphraseRequired(f"no terminal to ask on: set {PASSPHRASE_ENV}")
        try:
            value = getpass.getpass("passphrase for the client state: ")
        except EOFError:
            raise PassphraseRequired(f"no passphrase given: set {PASSPHRASE_ENV}") from None
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


async def _send(args: argparse.Namespace) -> int:
    """Send, or, when the node cannot be reached, keep the message as a draft that goes
    out on the next connection (``"queued": true``, exit 0; not with attachments, which
    must be uploaded first)."""
    files = [Path(p) for p in args.attach]
    for path in files:
        if not path.is_file():
            raise UsageError(f"not a file: {path}")
    if args.expire is not None and args.expire <= 0:
        raise UsageError("--expire takes a positive number of seconds")
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        client.check_recipient(args.to)
        try:
            result = await _send_online(client, args, files)
        except NetworkError:
            if files:
                raise
            client.write_draft(args.to, args.text, args.expire)
            _emit({"to": args.to, "eids": [], "queued": True})
            return EXIT_OK
    except trio.TooSlowError:
        return _fail("client.timeout", "the node did not acknowledge in time", EXIT_FAILED)
    finally:
        store.close()
    _report_failed_drafts(client)
    for eid, refused in result.failed.items():
        _fail(refused.node_code, f"envelope {eid.hex()} refused: {refused}", EXIT_FAILED)
    _emit({"to": args.to, "eids": [eid.hex() for eid in result.eids], "queued": False})
    return EXIT_FAILED if result.failed else EXIT_OK


async def _send_online(client: Client, args: argparse.Namespace, files: list[Path]) -> SendResult:
    """Connect (failing in :data:`CONNECT_TIMEOUT` seconds) and send; ``NetworkError``
    while nothing is in the outbox yet (a send that queued its envelopes waits for them)."""
    async with client.online(connect_timeout=min(CONNECT_TIMEOUT, _timeout())):
        with trio.fail_after(_timeout()):
            return await client.send(args.to, args.text, files, args.expire)


async def _receive(args: argparse.Namespace) -> int:
    """Print what is waiting; with ``--wait N`` wait up to N seconds for a message if none
    came, returning once something was printed and nothing is pending any more (with
    ``--wait-all`` the whole N seconds). Messages queued while offline go out first."""
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        _print_new(client, settled_only=False)  # saved by an earlier run, not yet shown
        async with client.online(connect_timeout=min(CONNECT_TIMEOUT, _timeout())):
            with trio.move_on_after(_timeout()):
                await client.drained.wait()
            printed = _print_new(client, settled_only=True)
            await _wait_for_more(client, args, printed)
            refused: dict[bytes, Refused] = {}
            with trio.move_on_after(_timeout()):
                refused = await client.flush_queued()
        _print_new(client, settled_only=False)
        _report_failed_drafts(client)
        for eid, exc in refused.items():
            _fail(exc.node_code, f"queued envelope {eid.hex()} refused: {exc}", EXIT_FAILED)
    finally:
        store.close()
    return EXIT_OK


async def _wait_for_more(client: Client, args: argparse.Namespace, printed: int) -> None:
    deadline = trio.current_time() + max(0.0, args.wait)
    while trio.current_time() < deadline:
        if printed and not args.wait_all and not _unsettled(client):
            return
        with trio.move_on_at(deadline):
            await client.changed.wait()
        printed += _print_new(client, settled_only=True)


def _unsettled(client: Client) -> bool:
    return any(not msg.settled for msg in client.inbox.unshown())


def _report_failed_drafts(client: Client) -> None:
    for draft, exc in client.drafts_failed:
        _fail(exc.code, f"the message queued for {draft.to} was not sent: {exc}", EXIT_FAILED)


def _print_new(client: Client, *, settled_only: bool) -> int:
    """Print the messages not shown yet; how many."""
    printed = 0
    for msg in client.inbox.unshown():
        if settled_only and not msg.settled:
            continue
        _emit(message_json(msg, client.message_group(msg)))
        client.inbox.mark_shown(msg)
        printed += 1
    return printed


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
        if args.accept:
            _accept(client, args.address)
        changed = client.device.identity_changed(args.address)
        identity = client.device.trust[args.address].identity
        accepted = persist.is_verified(client.store, args.address, identity)
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


def _accept(client: Client, address: str) -> None:
    """Mark the safety number with ``address`` as compared, accepting a changed identity
    first (which unblocks sending to it)."""
    if client.device.identity_changed(address):
        client.accept_identity(address)
    persist.mark_verified(client.store, address, client.device.trust[address].identity)


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
                "outbox": len(client.outbox) + len(client.drafts),
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
