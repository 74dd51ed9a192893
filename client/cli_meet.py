"""``sealrelay client meet``: the meeting of a group (issue 18), with the shipped Opus (+ VP8
with ``--video``) fixture as microphone and camera.

    sealrelay client meet GROUP --home DIR [--video] [--seconds N] [--transport quic|websocket]

GROUP is a group id in hex or the name of exactly one of the client's groups (as for
``client group``). The first member to start ``meet`` hosts the group's meeting and invites
the others; members that start it while an invite is live join (``client.meetings.group``).
Media runs for ``--seconds`` (default 10) from entering the room, over QUIC to the
account's own node (the client WebSocket if QUIC does not bind within a few seconds, or
with ``--transport websocket``).

Output: JSON lines on stdout, ``{"event": "joined", ...}``, ``{"event": "participant",
"pid": N, "address": ...}`` (and ``left``, ``leading``), ``{"event": "ended", "reason":
...}``, then the summary object last: ``client call``'s keys (``frames_sent``,
``frames_received``, ``frames_lost``, ``frames_late``, ``decrypt_failures``,
``latency_ms_p50``, ``latency_ms_p99``, ``jitter_ms``, ``transport``, ``seconds``) and
``participants`` (the most at once, this device included), ``speakers_heard`` and
``videos_received`` (participants whose audio or video reached this one), ``epochs`` (key
epochs held), and more counters, among them ``forged_streams``: streams that failed sender
authentication (their frame signatures failed or never came), and node sender ids that sent
frames or signatures under a participant's id not their own (``forged_senders``); each is
also a ``{"event": "forged_stream", "pid": N, "address": ..., "kind": ..., "layer": N,
"reason": ...}`` line (for a sender id, with ``sender``, ``claimed_pid`` and
``claimed_address``, ``pid`` being the forger's if known), and is no longer played.
A meeting not joined within 30 s (``meeting.not_joined``) or whose media
could not be set up (``meeting.failed``) exits 1 with one stderr line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

import trio

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
from client.cli_groups import _group_id
from client.meetings.session import group_meet

DRAIN_WAIT: Final = 5.0
"""Seconds to wait for the mailbox (invites that came while offline) before deciding."""
_MESSAGES: Final = {
    "meeting.not_joined": "no meeting of the group could be joined or started in time",
    "meeting.failed": "the meeting's media could not be set up",
}


def meet(args: argparse.Namespace) -> int:
    return _main(_meet, args)


async def _meet(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise UsageError("--seconds takes a positive number of seconds")
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        group_id = _group_id(client, args.group)
        session = group_meet(
            client,
            group_id,
            video=args.video,
            seconds=args.seconds,
            emit=_emit,
            transport=args.transport,
        )
        async with client.online(connect_timeout=min(CONNECT_TIMEOUT, _timeout())):
            with trio.move_on_after(DRAIN_WAIT):
                await client.drained.wait()
            outcome = await session.run()
    finally:
        store.close()
    _emit(session.summary())
    if outcome.failure is not None:
        return _fail(outcome.failure, _MESSAGES.get(outcome.failure, "failed"), EXIT_FAILED)
    return EXIT_OK
