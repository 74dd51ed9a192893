"""Group delivery tokens and bulk introductions at one node (issue 20), frame by frame on
a MemoryStore: ``SetGroupToken`` registers and revokes, a Send, SendBatch or SendShared
may present a live group token of the recipient's account instead of its account token,
a revoked one is refused with ``send.bad_token``, the number of live tokens is bounded;
``IntroduceMany`` counts once against the sender's introductions, each introduction in it
against the sender's batched introductions and its recipient's limit."""

from __future__ import annotations

import hashlib
import os

import msgpack
import pytest

from node import errors
from node.relay import Relay
from node.session import Session
from node.store import MemoryStore
from suites import labels
from tests.node.harness import (
    PEER,
    Clock,
    Device,
    call,
    eid,
    enroll,
    make_config,
    make_relay,
    server_keys,
)
from trust.limits import MAX_GROUP_TOKENS
from wire import decode, encode
from wire.relay import (
    MAX_INTRODUCTIONS,
    Error,
    Introduce,
    IntroduceMany,
    Ok,
    Send,
    SendBatch,
    SendShared,
    Sent,
    SentBatch,
    SentShared,
    SetGroupToken,
    SetIntroductions,
    SharedRecipient,
)


def group_token() -> tuple[bytes, bytes]:
    """A fresh group token and its verifier."""
    token = os.urandom(16)
    return token, hashlib.sha256(labels.DELIVERY_TOKEN_HASH_INFO + token).digest()


async def send(session: Session, to: Device, n: int, token: bytes | None) -> object:
    (reply,) = await call(session, Send(n, to.mailbox, eid(n), token, 60, b"sealed"))
    return reply


def code(reply: object) -> str:
    assert isinstance(reply, Error), reply
    return reply.code


@pytest.fixture
async def members() -> tuple[Relay, Session, Device, Session]:
    """alice (sending) and bob (receiving), enrolled; bob has no account token set."""
    relay = make_relay()
    alice, bob = Device.create("alice"), Device.create("bob")
    return relay, await enroll(relay, alice), bob, await enroll(relay, bob)


async def test_a_live_group_token_opens_the_mailbox_and_a_revoked_one_does_not(
    members: tuple[Relay, Session, Device, Session],
) -> None:
    _, a_session, bob, b_session = members
    token, verifier = group_token()
    assert code(await send(a_session, bob, 1, token)) == errors.SEND_BAD_TOKEN
    assert code(await send(a_session, bob, 6, None)) == errors.SEND_TOKEN_REQUIRED
    assert await call(b_session, SetGroupToken(2, verifier, None)) == [Ok(2)]
    assert await send(a_session, bob, 3, token) == Sent(3, eid(3), False)
    assert await call(b_session, SetGroupToken(4, None, verifier)) == [Ok(4)]
    assert code(await send(a_session, bob, 5, token)) == errors.SEND_BAD_TOKEN


async def test_a_rotation_replaces_the_old_token_in_one_step(
    members: tuple[Relay, Session, Device, Session],
) -> None:
    relay, a_session, bob, b_session = members
    (old, old_v), (new, new_v), (other, other_v) = group_token(), group_token(), group_token()
    for n, verifier in enumerate((old_v, other_v), start=1):
        assert await call(b_session, SetGroupToken(n, verifier, None)) == [Ok(n)]
    assert await send(a_session, bob, 10, old) == Sent(10, eid(10), False)  # (now cached)
    assert await call(b_session, SetGroupToken(11, new_v, old_v)) == [Ok(11)]
    assert code(await send(a_session, bob, 12, old)) == errors.SEND_BAD_TOKEN
    assert await send(a_session, bob, 13, new) == Sent(13, eid(13), False)
    assert await send(a_session, bob, 14, other) == Sent(14, eid(14), False)  # another group's
    assert await relay.ports.group_tokens.count_group_tokens(bob.address) == 2


async def test_a_group_token_opens_every_upload_kind(
    members: tuple[Relay, Session, Device, Session],
) -> None:
    _, a_session, bob, b_session = members
    token, verifier = group_token()
    assert await call(b_session, SetGroupToken(1, verifier, None)) == [Ok(1)]
    batch = SendBatch(2, (Send(3, bob.mailbox, eid(3), token, 60, b"one"),))
    (answer,) = await call(a_session, batch)
    assert answer == SentBatch(2, (Sent(3, eid(3), False),))
    shared = SendShared(4, eid(4), 60, (SharedRecipient(bob.mailbox, token),), b"group")
    assert await call(a_session, shared) == [SentShared(4, eid(4), ("",))]


async def test_another_accounts_group_token_does_not_open_the_mailbox(
    members: tuple[Relay, Session, Device, Session],
) -> None:
    relay, a_session, bob, _ = members
    carol = Device.create("carol")
    c_session = await enroll(relay, carol)
    token, verifier = group_token()
    assert await call(c_session, SetGroupToken(1, verifier, None)) == [Ok(1)]
    assert code(await send(a_session, bob, 2, token)) == errors.SEND_BAD_TOKEN
    assert await send(a_session, carol, 3, token) == Sent(3, eid(3), False)


async def test_live_group_tokens_are_bounded_per_account(
    members: tuple[Relay, Session, Device, Session],
) -> None:
    relay, _, bob, b_session = members
    for _ in range(MAX_GROUP_TOKENS):
        await relay.ports.group_tokens.put_group_token(
            bob.address, os.urandom(32), None, MAX_GROUP_TOKENS
        )
    _, verifier = group_token()
    assert code((await call(b_session, SetGroupToken(1, verifier, None)))[0]) == (
        errors.LIMIT_GROUP_TOKENS
    )
    assert not await relay.ports.group_tokens.has_group_token(bob.address, verifier)


async def test_set_group_token_needs_authentication() -> None:
    session = Session(make_relay(), PEER)
    session.hello()
    (reply,) = await call(session, SetGroupToken(1, os.urandom(32), None))
    assert code(reply) == errors.AUTH_REQUIRED


# --- IntroduceMany ---------------------------------------------------------------------------


async def strangers(relay: Relay, count: int, accept: bool = True) -> list[Device]:
    found = []
    for i in range(count):
        device = Device.create(f"s{i:03d}")
        session = await enroll(relay, device)
        assert await call(session, SetIntroductions(1, accept)) == [Ok(1)]
        found.append(device)
    return found


def intros(to: list[Device], first: int = 1) -> tuple[Introduce, ...]:
    return tuple(
        Introduce(first + i, d.mailbox, eid(first + i), 60, b"welcome") for i, d in enumerate(to)
    )


async def test_one_upload_introduces_many_strangers_past_the_per_sender_limit() -> None:
    relay = make_relay()
    admin = await enroll(relay, Device.create("admin"))
    many = await strangers(relay, 3 * relay.config.introductions_per_minute)
    (answer,) = await call(admin, IntroduceMany(1000, intros(many)))
    assert isinstance(answer, SentBatch)
    assert [r for r in answer.results if not isinstance(r, Sent)] == []
    assert relay.metrics.accepted == len(many)
    for device in many:
        pending = await relay.ports.mailboxes.pending(device.mailbox, 0, 10, relay.now_ms())
        assert [e.sender for e in pending] == ["admin@" + relay.domain]


async def test_uploads_count_against_the_senders_introductions() -> None:
    relay = make_relay(introductions_per_minute=2)
    admin = await enroll(relay, Device.create("admin"))
    (bob,) = await strangers(relay, 1)
    for n in (1, 2):
        (answer,) = await call(admin, IntroduceMany(n, intros([bob], first=10 * n)))
        assert isinstance(answer, SentBatch)
    (refused,) = await call(admin, IntroduceMany(3, intros([bob], first=30)))
    assert code(refused) == errors.LIMIT_RATE
    assert isinstance(refused, Error)
    assert refused.retry_after > 0
    (single,) = await call(admin, Introduce(4, bob.mailbox, eid(40), 60, b"hi"))
    assert code(single) == errors.LIMIT_RATE  # the same bucket as single introductions


async def test_each_introduction_counts_against_batched_and_per_recipient_limits() -> None:
    clock = Clock()
    relay = make_relay(
        clock, batched_introductions_per_minute=5, introductions_per_recipient_per_minute=2
    )
    admin = await enroll(relay, Device.create("admin"))
    many = await strangers(relay, 6)
    (answer,) = await call(admin, IntroduceMany(1, intros(many)))
    assert isinstance(answer, SentBatch)
    assert [isinstance(r, Sent) for r in answer.results] == [True] * 5 + [False]  # 5 a minute
    last = answer.results[-1]
    assert isinstance(last, Error)
    assert last.code == errors.LIMIT_RATE
    assert last.retry_after > 0
    # per recipient: a second sender's introductions to one stranger run out at its limit
    clock.now += 60  # (every bucket full again)
    other = await enroll(relay, Device.create("other"))
    target = many[0]
    results = []
    for n in range(3):
        (reply,) = await call(other, IntroduceMany(10 + n, intros([target], first=100 + n)))
        assert isinstance(reply, SentBatch)
        results += list(reply.results)
    assert [isinstance(r, Sent) for r in results] == [True, True, False]
    assert code(results[-1]) == errors.LIMIT_RATE


async def test_an_introduction_to_a_closed_account_is_refused_alone() -> None:
    relay = make_relay()
    admin = await enroll(relay, Device.create("admin"))
    (open_,) = await strangers(relay, 1)
    closed = Device.create("closed")
    await enroll(relay, closed)
    (answer,) = await call(admin, IntroduceMany(1, intros([open_, closed])))
    assert isinstance(answer, SentBatch)
    first, second = answer.results
    assert first == Sent(1, eid(1), False)
    assert code(second) == errors.SEND_INTRODUCTIONS_CLOSED


async def test_a_revocation_at_another_replica_takes_effect_at_once() -> None:
    """Cluster mode (``shared_store``): no replica caches a live group token, so one that
    accepted a token refuses it as soon as another replica revoked it."""
    store = MemoryStore()
    config = make_config()
    keys = server_keys(config.suite)
    one, two = (
        Relay(config=config, store=store, keys=keys, clock=Clock(), shared_store=True)
        for _ in range(2)
    )
    alice, bob = Device.create("alice"), Device.create("bob")
    a_session, b_session = await enroll(two, alice), await enroll(one, bob)
    token, verifier = group_token()
    assert await call(b_session, SetGroupToken(1, verifier, None)) == [Ok(1)]
    assert await send(a_session, bob, 2, token) == Sent(2, eid(2), False)
    assert await call(b_session, SetGroupToken(3, None, verifier)) == [Ok(3)]
    assert code(await send(a_session, bob, 4, token)) == errors.SEND_BAD_TOKEN


async def test_out_of_bounds_frames_are_malformed_and_change_nothing(
    members: tuple[Relay, Session, Device, Session],
) -> None:
    relay, a_session, bob, b_session = members
    intro = ["relay.introduce", 1, {"id": 1, "mailbox": bob.mailbox, "eid": eid(1), "ttl": 60,
                                    "body": b"hi"}]  # fmt: skip
    short = _raw("relay.set-group-token", {"id": 2, "verifier": b"\1" * 31, "revoke": None})
    empty = _raw("relay.introduce-many", {"id": 3, "intros": []})
    many = _raw("relay.introduce-many", {"id": 4, "intros": [intro] * (MAX_INTRODUCTIONS + 1)})
    assert decode(_raw("relay.introduce-many", {"id": 5, "intros": [intro]})) == IntroduceMany(
        5, (Introduce(1, bob.mailbox, eid(1), 60, b"hi"),)
    )  # (the raw encoding is the codec's, so only the bounds differ)
    cases = (
        (b_session, short, errors.PROTO_MALFORMED),
        (a_session, empty, errors.PROTO_MALFORMED),
        (a_session, many, errors.PROTO_TOO_LARGE),  # an array past its bound
    )
    for session, data, refusal in cases:
        (reply,) = [decode(encode(f)) for f in await session.receive(data)]
        assert isinstance(reply, Error)
        assert (reply.id, reply.code) == (0, refusal)
    assert await relay.ports.group_tokens.count_group_tokens(bob.address) == 0
    assert relay.metrics.accepted == 0


def _raw(tag: str, fields: dict[str, object]) -> bytes:
    """A frame in the codec's form (``[tag, version, {fields}]``) without its checks."""
    return bytes(msgpack.packb([tag, 1, fields], use_bin_type=True))
