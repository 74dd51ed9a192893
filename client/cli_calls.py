"""``sealrelay client call`` and ``sealrelay client answer``: a 1:1 call (issue 17), with
the shipped Opus (+ VP8 with ``--video``) fixture as microphone and camera.

    sealrelay client call TO_ADDRESS --home DIR [--video] [--seconds N] [--transport quic|websocket]
    sealrelay client answer --home DIR [--wait SECONDS] [--seconds N]

``call`` rings TO_ADDRESS's devices for the ring timeout (45 s); ``answer`` waits up to
``--wait`` seconds for a call to ring on this device and accepts the first. Media runs for
``--seconds`` (default :data:`DEFAULT_SECONDS`), then this side hangs up; the peer's
hang-up ends it earlier. Media goes over QUIC to the account's own node, over the client
WebSocket with ``--transport websocket``, and falls back to the WebSocket by itself when
QUIC does not connect within a few seconds (``client.calls.control``).

Output: JSON lines on stdout, ``{"event": "ringing", ...}``, ``{"event": "answered",
...}``, ``{"event": "ended", "reason": CODE, ...}``, then, if media ran, the summary
object last (``frames_sent``, ``frames_received``, ``frames_lost``, ``frames_late``,
``decrypt_failures``, ``latency_ms_p50``, ``latency_ms_p99``, ``jitter_ms``,
``transport``, ``seconds``, ...). A call that ends for any other reason than a hang-up
(``call.offline``, ``call.missed``, ``call.rejected``, ``call.busy``,
``call.untrusted_identity``, ``call.failed``; ``call.no_call`` when nothing rang for
``answer``) exits 1 with one stderr line ``sealrelay: CODE: text``. Store, passphrase and
other errors as in :mod:`client.cli`.

``$SEALRELAY_RING_TIMEOUT`` (seconds; for tests and demos only, default 45): the ring
timeout of calls this process places or rings for.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Final

import trio

from client.app import Client
from client.calls.control import CallOutcome, MediaOptions, answer_call, ended_line, place_call
from client.calls.signal_events import RING_TIMEOUT_MS, CallConfig, EndReason
from client.cli import (
    ATTACHMENTS_DIR,
    CONNECT_TIMEOUT,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    _emit,
    _fail,
    _main,
    _open_store,
    _timeout,
)
from client.errors import UntrustedIdentity
from client.store.sqlite import SqliteStore

RING_TIMEOUT_ENV: Final = "SEALRELAY_RING_TIMEOUT"
DEFAULT_SECONDS: Final = 10.0
"""Seconds of media a call plays unless ``--seconds`` says otherwise."""
DEFAULT_WAIT: Final = 60.0
"""Seconds ``answer`` waits for a call to ring unless ``--wait`` says otherwise."""
FLUSH_TIMEOUT: Final = 5.0
"""Seconds a command waits for its last signals (the hang-up) to reach the node."""
NO_CALL: Final = "call.no_call"
"""``answer``: no call rang within ``--wait`` seconds."""

_MESSAGES: Final = {
    EndReason.OFFLINE: "no device of {peer} rang within the ring timeout",
    EndReason.MISSED: "{peer} did not answer",
    EndReason.REJECTED: "{peer} declined the call",
    EndReason.BUSY: "{peer} is in another call",
    EndReason.UNTRUSTED_IDENTITY: (
        "the identity key of {peer} changed and is not accepted: compare the safety number"
        " ('sealrelay client verify {peer}', then --accept)"
    ),
    EndReason.FAILED: "the call's media could not be set up",
    EndReason.GLARE: "{peer} called at the same time; that call went on instead",
}


def call(args: argparse.Namespace) -> int:
    return _main(_call, args)


def answer(args: argparse.Namespace) -> int:
    return _main(_answer, args)


def _call_config() -> CallConfig:
    """The protocol's timeouts, with ``$SEALRELAY_RING_TIMEOUT`` if set."""
    value = os.environ.get(RING_TIMEOUT_ENV)
    if value is None:
        return CallConfig()
    try:
        ring_ms = round(float(value) * 1000)
    except ValueError:
        raise UsageError(f"{RING_TIMEOUT_ENV} must be a number of seconds") from None
    if not 0 < ring_ms <= RING_TIMEOUT_MS * 4:
        raise UsageError(f"{RING_TIMEOUT_ENV} must be between 0 and {RING_TIMEOUT_MS // 250} s")
    return CallConfig(ring_timeout_ms=ring_ms)


def _options(args: argparse.Namespace) -> MediaOptions:
    if args.seconds <= 0:
        raise UsageError("--seconds takes a positive number of seconds")
    return MediaOptions(seconds=args.seconds, transport=getattr(args, "transport", "quic"))


def _load(args: argparse.Namespace, store: SqliteStore) -> Client:
    save_dir = Path(args.home) / ATTACHMENTS_DIR
    return Client.load(store, save_dir=save_dir, call_config=_call_config())


async def _call(args: argparse.Namespace) -> int:
    options = _options(args)
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        with contextlib.suppress(UntrustedIdentity):  # the call ends as untrusted_identity
            client.check_recipient(args.to)
        async with client.online(connect_timeout=min(CONNECT_TIMEOUT, _timeout())):
            outcome = await place_call(
                client.calls, client, args.to, video=args.video, options=options, emit=_emit
            )
            await _flush(client)
    finally:
        store.close()
    return _report(outcome)


async def _answer(args: argparse.Namespace) -> int:
    options = _options(args)
    if args.wait < 0:
        raise UsageError("--wait takes a non-negative number of seconds")
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        async with client.online(connect_timeout=min(CONNECT_TIMEOUT, _timeout())):
            outcome = await answer_call(
                client.calls, client, wait=args.wait, options=options, emit=_emit
            )
            await _flush(client)
    finally:
        store.close()
    if outcome is None:
        _emit(ended_line(b"", "", NO_CALL))
        return _fail(NO_CALL, f"no call rang within {args.wait:g} s", EXIT_FAILED)
    return _report(outcome)


async def _flush(client: Client) -> None:
    """Let the last signals (the hang-up, a ringing) reach the node."""
    with trio.move_on_after(FLUSH_TIMEOUT):
        await client.calls.flush()


def _report(outcome: CallOutcome) -> int:
    """Print the summary (last on stdout); a failure's stderr line and status."""
    if outcome.summary is not None:
        _emit(outcome.summary)
    if outcome.ok:
        return EXIT_OK
    message = _MESSAGES.get(outcome.reason, "the call ended")
    return _fail(outcome.reason, message.format(peer=outcome.peer), EXIT_FAILED)
