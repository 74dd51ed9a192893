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
authentication (another member made frames under a participant's id, or its frame
signatures failed or never came); each is also a ``{"event": "forged_stream", "pid": N,
"address": ..., "kind": ..., "layer": N, "reason": ...}`` line, and is no longer played.
A meeting not joined within 30 s (``meeting.not_joined``) or whose media
could not be set up (``meeting.failed``) exits 1 with one stderr line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Final

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
from client.cli_groups import _group_id
from client.meetings.group import Event, GroupMeeting, Me
from client.meetings.meet import Meet
from client.meetings.net import MeetingInbox, MeetingNet
from transport.base import MediaTransport
from wire.relay import LegGrant

DRAIN_WAIT: Final = 5.0
"""Seconds to wait for the mailbox (invites that came while offline) before deciding."""
_MESSAGES: Final = {
    "meeting.not_joined": "no meeting of the group could be joined or started in time",
    "meeting.failed": "the meeting's media could not be set up",
}


def meet(args: argparse.Namespace) -> int:
    return _main(_meet, args)


class _Node:
    """:class:`client.meetings.meet.Node` over a :class:`Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def request(self, frame: object) -> object:
        return await self._client.link.request(frame)

    async def media_quic(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        return await self._client.media_quic(grant)

    async def media_websocket(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        return await self._client.media_websocket(grant)


def _members(client: Client, group_id: bytes) -> list[str]:
    ng = client.groups.get(group_id)
    if ng is None or ng.group is None:
        return []
    return list(ng.group.state.members)


async def _meet(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise UsageError("--seconds takes a positive number of seconds")
    store = _open_store(Path(args.home), create=False)
    try:
        client = _load(args, store)
        group_id = _group_id(client, args.group)
        device = client.device
        me = Me(
            device.address,
            device.device_id,
            device.identity.public.sig,
            device.identity,
            device.suite.sig.verify,
        )
        core = GroupMeeting(
            group_id, me, lambda: _members(client, group_id), client.entropy.random_bytes
        )
        inbox = MeetingInbox()
        client.receiver.meetings = inbox
        async with client.online(connect_timeout=min(CONNECT_TIMEOUT, _timeout())):
            with trio.move_on_after(DRAIN_WAIT):
                await client.drained.wait()

            def net(on_event: Callable[[Event], object]) -> MeetingNet:
                return MeetingNet(
                    core,
                    inbox,
                    client.sendpath,
                    reply=lambda: (client.info.delivery_token, client.info.mailbox),
                    clock=client.clock,
                    on_event=on_event,
                )

            session = Meet(
                net,
                _Node(client),
                video=args.video,
                seconds=args.seconds,
                emit=_emit,
                transport=args.transport,
            )
            outcome = await session.run()
    finally:
        store.close()
    _emit(session.summary())
    if outcome.failure is not None:
        return _fail(outcome.failure, _MESSAGES.get(outcome.failure, "failed"), EXIT_FAILED)
    return EXIT_OK
