"""Helpers of the call signalling tests: a call driven to any state, each input as the
public method that feeds it, and a deterministic randomness source."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from client.calls.keys import CallSecret
from client.calls.signal import Call
from client.calls.signal_events import CallConfig, CallState, Event, Role
from client.calls.signal_table import Input
from wire.calls import (
    CallAnswer,
    CallBusy,
    CallHangup,
    CallKeyUpdate,
    CallOffer,
    CallReject,
    CallRinging,
    LegRef,
    RejectReason,
)

ALICE = "alice@a.example"
BOB = "bob@b.example"
MALLORY = "mallory@m.example"
T0 = 1_800_000_000_000
CID = b"\xc1" * 16
OTHER_CID = b"\x01" * 16
SECRET = b"\x5c" * 32
LEG = LegRef("b.example", b"\x0b" * 16)
CALLER_LEG = LegRef("a.example", b"\x0a" * 16)
CONFIG = CallConfig()
FAR = T0 + 10**9
"""A time past every deadline."""

CREATION: frozenset[Input] = frozenset(
    {
        Input.DIAL,
        Input.DIAL_UNTRUSTED,
        Input.OFFER,
        Input.OFFER_EXPIRED,
        Input.OFFER_UNTRUSTED,
        Input.OFFER_BUSY,
    }
)
"""Inputs that only :meth:`Call.dial` / :meth:`Call.incoming` feed (rows from IDLE)."""


class Randomness:
    """``random_bytes`` that are distinct and repeatable: SHA-256 of a counter."""

    def __init__(self, seed: bytes = b"") -> None:
        self.seed, self.n = seed, 0

    def __call__(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            self.n += 1
            out += hashlib.sha256(self.seed + self.n.to_bytes(8, "big")).digest()
        return out[:size]


def offer(
    call_id: bytes = CID, sent: int = T0, ring_ms: int = 45_000, video: bool = False
) -> CallOffer:
    return CallOffer(call_id, SECRET, video, sent, sent + ring_ms)


def feed(call: Call, kind: Input, now: int, peer: str = BOB) -> list[Event]:
    """Feed input ``kind`` through the public method that carries it."""
    cid = call.call_id
    actions: dict[Input, Callable[[], list[Event]]] = {
        Input.RINGING: lambda: call.receive(peer, CallRinging(cid), now),
        Input.ANSWER: lambda: call.receive(peer, CallAnswer(cid, LEG), now),
        Input.REJECT: lambda: call.receive(peer, CallReject(cid, RejectReason.DECLINED), now),
        Input.REJECT_UNAVAILABLE: lambda: call.receive(
            peer, CallReject(cid, RejectReason.UNAVAILABLE), now
        ),
        Input.BUSY: lambda: call.receive(peer, CallBusy(cid), now),
        Input.HANGUP: lambda: call.receive(peer, CallHangup(cid), now),
        Input.KEY_UPDATE: lambda: call.receive(peer, CallKeyUpdate(cid, 1), now),
        Input.ACCEPT: lambda: call.accept(now),
        Input.DECLINE: lambda: call.decline(now),
        Input.HANGUP_LOCAL: lambda: call.hangup(now),
        Input.LEG_READY: lambda: call.leg_ready(LEG, now),
        Input.LEG_FAILED: lambda: call.leg_failed(now),
        Input.CONNECTED: lambda: call.connected(now),
        Input.MEDIA_FAILED: lambda: call.media_failed(now),
        Input.SEND_FAILED: lambda: call.send_failed(now, untrusted=False),
        Input.SEND_UNTRUSTED: lambda: call.send_failed(now, untrusted=True),
        Input.REKEY: lambda: call.rekey(1, now),
        Input.TIMEOUT: lambda: call.tick(FAR),
        Input.GLARE: lambda: call.give_way(OTHER_CID, now),
    }
    return actions[kind]()


def caller_at(state: CallState, now: int = T0) -> Call:
    """An outgoing call from ALICE to BOB, driven to ``state`` by the usual path."""
    if state is CallState.IDLE:
        return Call(CID, BOB, Role.CALLER, CallSecret(SECRET), False, CONFIG)
    call, _ = Call.dial(offer(sent=now), BOB, identity_accepted=True, config=CONFIG)
    path = {
        CallState.DIALING: [],
        CallState.RINGING: [Input.RINGING],
        CallState.CONNECTING: [Input.RINGING, Input.ANSWER],
        CallState.ACTIVE: [Input.RINGING, Input.ANSWER, Input.CONNECTED],
        CallState.ENDED: [Input.HANGUP_LOCAL],
    }[state]
    for kind in path:
        feed(call, kind, now)
    assert call.state is state
    return call


def callee_at(state: CallState, now: int = T0) -> Call:
    """An incoming call from ALICE at BOB's device, driven to ``state``."""
    if state is CallState.IDLE:
        return Call(CID, ALICE, Role.CALLEE, CallSecret(SECRET), False, CONFIG)
    call, _ = Call.incoming(
        ALICE, offer(sent=now), now, identity_accepted=True, busy=False, config=CONFIG
    )
    path = {
        CallState.RINGING: [],
        CallState.ANSWERING: [Input.ACCEPT],
        CallState.ACTIVE: [Input.ACCEPT, Input.LEG_READY],
        CallState.ENDED: [Input.DECLINE],
    }[state]
    for kind in path:
        feed(call, kind, now, peer=ALICE)
    assert call.state is state
    return call


def at(role: Role, state: CallState, now: int = T0) -> Call:
    return caller_at(state, now) if role is Role.CALLER else callee_at(state, now)


def peer_of(role: Role) -> str:
    return BOB if role is Role.CALLER else ALICE
