"""The node's whole answer to a client frame: ``node.session.Session.receive`` on a relay
with a memory store, for an authenticated device (mode 0) or a fresh connection (mode 1).

``Session`` answers everything with frames, so nothing can escape it; what must not
happen is an ``Error`` with code ``internal``: the session's last-resort answer to an
exception a handler did not expect (logged with its traceback). A client's frame that
gets one is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import trio

from client.identity import Identity
from node import errors
from node.relay import Relay
from node.session import Caller, Session
from node.store import MemoryStore
from suites import labels
from tests.client.pairs import DeterministicEntropy
from tests.fuzz.cursor import Cursor
from tests.fuzz.targets.base import Target
from tests.fuzz.world import DOMAIN, NOW_S, world
from tests.node.harness import Clock, Device, call, make_config, token_for
from wire import encode
from wire.relay import (
    PURPOSE_REGISTER,
    Auth,
    AuthPayload,
    Error,
    PublishPrekeys,
    Register,
    Registered,
    SetDeliveryToken,
)

PEER = "192.0.2.7"


@dataclass
class Node:
    relay: Relay
    clock: Clock
    alice: Caller
    bob_mailbox: bytes
    bob_token: bytes


@cache
def node() -> Node:
    """A relay of the world's domain with Alice and Bob enrolled, Bob's prekeys published
    and his delivery token set; mailboxes come from a seeded random source."""
    w = world()
    clock = Clock(float(NOW_S))
    config = make_config(domain=DOMAIN, rate_account_per_s=1e6, rate_ip_per_s=1e6)
    relay = Relay(
        config=config,
        store=MemoryStore(),
        keys=w.server,
        clock=clock,
        random_bytes=DeterministicEntropy(b"sealrelay-fuzz/relay").random_bytes,
    )
    token, verifier = token_for(Device(w.bob.identity, "bob"))

    async def setup() -> tuple[Registered, Registered]:
        alice, _ = await _enroll(relay, w.alice.identity, "alice")
        bob, session = await _enroll(relay, w.bob.identity, "bob")
        await call(session, PublishPrekeys(2, w.bob.pool.upload()))
        await call(session, SetDeliveryToken(3, verifier))
        return alice, bob

    alice, bob = trio.run(setup)
    return Node(
        relay, clock, Caller(alice.address, alice.device, alice.mailbox), bob.mailbox, token
    )


async def _enroll(relay: Relay, identity: Identity, name: str) -> tuple[Registered, Session]:
    session = Session(relay, PEER)
    nonce = session.hello().nonce
    payload = AuthPayload(PURPOSE_REGISTER, DOMAIN, nonce, f"{name}@{DOMAIN}", 0)
    sig = identity.sign(encode(payload), labels.CTX_DEVICE_AUTH)
    code = await relay.add_invite(name, 3600)
    (reply,) = await call(session, Register(1, code, name, identity.public, sig))
    assert isinstance(reply, Registered), reply
    return reply, session


def _logged_in(session: Session, caller: Caller, now: float) -> None:
    """Take ``session`` through the core's login as ``caller`` (the relay's check of the
    signature is skipped: the fuzzed frame is what matters)."""
    session.hello()
    auth = Auth(1, caller.address, caller.device, bytes(64))
    session.core.receive(encode(auth), now)
    session.core.logged_in(caller)


def node_session(data: bytes) -> None:
    n = node()
    cursor = Cursor(data)
    mode, frame = cursor.byte() & 1, cursor.rest()
    n.clock.now += 1.0  # rate-limit buckets refill; envelopes age
    session = Session(n.relay, PEER)
    if mode == 0:
        _logged_in(session, n.alice, n.clock.now)
    else:
        session.hello()
    answers = trio.run(session.receive, frame)
    for answer in answers:
        encode(answer)
        if isinstance(answer, Error):
            assert answer.code != errors.INTERNAL, f"internal error: {answer.message}"


TARGETS = (
    Target(
        "node_session",
        "node.session.Session.receive (decode, rate limits, every request handler)",
        "none: every refusal is an Error frame, never code 'internal'",
        node_session,
        max_len=8192,
    ),
)
