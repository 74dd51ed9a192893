"""The connection core, frame by frame, on a MemoryStore (no sockets)."""

from __future__ import annotations

import pytest

from client.sealed import ServerVerifyKey, StaticKeyring, verify_certificate
from node import errors
from node.relay import Relay
from node.session import CLOSE_POLICY, CLOSE_SUPERSEDED, LIVE_MAX, Session
from node.store import StoredEnvelope
from tests.node.harness import (
    DOMAIN,
    PEER,
    Clock,
    Device,
    call,
    eid,
    enroll,
    login,
    make_relay,
    token_for,
)
from wire import encode
from wire.relay import (
    Ack,
    Acked,
    BlobGrant,
    CertificateIssued,
    Deliver,
    Drained,
    Error,
    FetchPrekeys,
    GetCertificate,
    GetPrekeyStatus,
    Hello,
    Introduce,
    Ok,
    Ping,
    Pong,
    PrekeyBundles,
    PrekeyStatus,
    PublishPrekeys,
    Registered,
    RequestBlobUpload,
    Send,
    Sent,
    SetDeliveryToken,
    SetIntroductions,
)


def error_code(frames: list[object]) -> str:
    (frame,) = frames
    assert isinstance(frame, Error), frame
    return frame.code


async def send(session: Session, to: Device, n: int, token: bytes | None, **kw: object) -> object:
    frame = Send(
        id=n,
        mailbox=to.mailbox,
        eid=eid(n),
        token=token,
        ttl=int(kw.get("ttl", 60)),  # type: ignore[call-overload]
        body=bytes(kw.get("body", b"x" * 100)),  # type: ignore[call-overload]
    )
    (reply,) = await call(session, frame)
    return reply


async def pushes(session: Session) -> list[object]:
    out: list[object] = []
    while frames := await session.next_push():
        out += frames
    return out


def delivered_eids(frames: list[object]) -> list[bytes]:
    return [e.eid for f in frames if isinstance(f, Deliver) for e in f.envelopes]


@pytest.fixture
def relay() -> Relay:
    return make_relay()


@pytest.fixture
async def pair(relay: Relay) -> tuple[Device, Session, Device, Session, bytes]:
    """alice and bob enrolled; bob has set a delivery token, returned last."""
    alice, bob = Device.create("alice"), Device.create("bob")
    a_session, b_session = await enroll(relay, alice), await enroll(relay, bob)
    token, verifier = token_for(bob)
    assert await call(b_session, SetDeliveryToken(7, verifier)) == [Ok(7)]
    await pushes(b_session)
    return alice, a_session, bob, b_session, token


# --- handshake, registration and authentication ------------------------------------------


async def test_hello_names_the_domain_and_a_fresh_challenge(relay: Relay) -> None:
    one, two = Session(relay, PEER).hello(), Session(relay, PEER).hello()
    assert isinstance(one, Hello)
    assert (one.server, one.suite) == (DOMAIN, relay.suite.suite_id)
    assert one.nonce != two.nonce


async def test_register_with_a_good_code(relay: Relay) -> None:
    alice = Device.create("alice")
    session = await enroll(relay, alice)
    assert alice.address == f"alice@{DOMAIN}"
    assert alice.device == 1
    assert len(alice.mailbox) == 16
    assert await call(session, Ping(3)) == [Pong(3, relay.now_ms())]
    assert await pushes(session) == [Drained(0)]


async def test_code_is_spent_once(relay: Relay) -> None:
    code = await relay.add_invite("alice", 3600)
    first = Session(relay, PEER)
    (ok,) = await call(first, Device.create("alice").register_frame(first.hello(), code))
    assert isinstance(ok, Registered)
    second = Session(relay, PEER)
    frame = Device.create("alice").register_frame(second.hello(), code)
    assert error_code(await call(second, frame)) == errors.AUTH_BAD_CODE


@pytest.mark.parametrize("code", ["", "not-a-code", "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AA"])
async def test_unknown_or_garbage_code(relay: Relay, code: str) -> None:
    session = Session(relay, PEER)
    frame = Device.create("alice").register_frame(session.hello(), code)
    assert error_code(await call(session, frame)) == errors.AUTH_BAD_CODE


async def test_code_bound_to_its_name(relay: Relay) -> None:
    code = await relay.add_invite("alice", 3600)
    session = Session(relay, PEER)
    frame = Device.create("mallory").register_frame(session.hello(), code)
    assert error_code(await call(session, frame)) == errors.AUTH_BAD_CODE


async def test_code_accepted_in_lower_case_without_dashes(relay: Relay) -> None:
    code = await relay.add_invite("alice", 3600)
    session = Session(relay, PEER)
    frame = Device.create("alice").register_frame(session.hello(), code.replace("-", "").lower())
    (reply,) = await call(session, frame)
    assert isinstance(reply, Registered)


async def test_expired_code(relay: Relay) -> None:
    clock = relay.clock
    assert isinstance(clock, Clock)
    code = await relay.add_invite("alice", 10)
    clock.now += 11
    session = Session(relay, PEER)
    frame = Device.create("alice").register_frame(session.hello(), code)
    assert error_code(await call(session, frame)) == errors.AUTH_BAD_CODE


async def test_invalid_name(relay: Relay) -> None:
    code = await relay.add_invite("Bad Name", 3600)
    session = Session(relay, PEER)
    frame = Device.create("Bad Name").register_frame(session.hello(), code)
    assert error_code(await call(session, frame)) == errors.AUTH_BAD_CODE


async def test_register_signature_must_match_identity(relay: Relay) -> None:
    code = await relay.add_invite("alice", 3600)
    session = Session(relay, PEER)
    hello = session.hello()
    frame = Device.create("alice").register_frame(hello, code)
    other = Device.create("alice").register_frame(hello, code)
    forged = type(frame)(frame.id, frame.code, frame.name, frame.identity, other.sig)
    assert error_code(await call(session, forged)) == errors.AUTH_FAILED


async def test_second_login_on_a_connection_is_a_replay(relay: Relay) -> None:
    alice = Device.create("alice")
    session = await enroll(relay, alice)
    code = await relay.add_invite("bob", 3600)
    frame = Device.create("bob").register_frame(Hello(1, DOMAIN, 2, b"\0" * 32, 0), code)
    assert error_code(await call(session, frame)) == errors.AUTH_REPLAYED
    hello = Hello(1, DOMAIN, 2, b"\0" * 32, 0)
    assert error_code(await call(session, alice.auth_frame(hello))) == errors.AUTH_REPLAYED


async def test_auth_good_and_pending_count(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, _, token = pair
    assert isinstance(await send(a_session, bob, 1, token), Sent)
    _, reply = await login(a_session.relay, bob)
    assert reply.mailbox == bob.mailbox
    assert reply.pending == 1


async def test_auth_with_another_connections_nonce_fails(relay: Relay) -> None:
    alice = Device.create("alice")
    await enroll(relay, alice)
    seen, target = Session(relay, PEER), Session(relay, PEER)
    stolen = alice.auth_frame(seen.hello())
    target.hello()
    assert error_code(await call(target, stolen)) == errors.AUTH_FAILED


async def test_auth_failure_spends_the_challenge(relay: Relay) -> None:
    alice, mallory = Device.create("alice"), Device.create("mallory")
    await enroll(relay, alice)
    mallory.address, mallory.device = alice.address, alice.device
    session = Session(relay, PEER)
    hello = session.hello()
    assert error_code(await call(session, mallory.auth_frame(hello))) == errors.AUTH_FAILED
    assert error_code(await call(session, alice.auth_frame(hello))) == errors.AUTH_REPLAYED


async def test_auth_unknown_device(relay: Relay) -> None:
    ghost = Device.create(
        "ghost",
    )
    ghost.address, ghost.device = f"ghost@{DOMAIN}", 1
    session = Session(relay, PEER)
    assert error_code(await call(session, ghost.auth_frame(session.hello()))) == errors.AUTH_FAILED


@pytest.mark.parametrize(
    "frame",
    [
        GetPrekeyStatus(1),
        FetchPrekeys(1, f"bob@{DOMAIN}"),
        GetCertificate(1),
        Ack(1, ()),
        RequestBlobUpload(1, 10, 60),
        Send(1, b"\0" * 16, b"\1" * 16, None, 60, b"x"),
    ],
)
async def test_requests_need_authentication(relay: Relay, frame: object) -> None:
    session = Session(relay, PEER)
    session.hello()
    (reply,) = await call(session, frame)
    assert isinstance(reply, Error)
    assert (reply.id, reply.code) == (1, errors.AUTH_REQUIRED)


# --- malformed input -------------------------------------------------------------------


async def test_garbage_keeps_the_connection(relay: Relay) -> None:
    session = Session(relay, PEER)
    session.hello()
    for junk in (b"", b"\xc1", b"\x93\xa3abc\x01\x80", encode(Ping(1)) + b"\0"):
        (reply,) = await session.receive(junk)
        assert isinstance(reply, Error)
        assert (reply.id, reply.code) == (0, errors.PROTO_MALFORMED)
    assert await call(session, Ping(2)) == [Pong(2, relay.now_ms())]


async def test_text_frames_refused(relay: Relay) -> None:
    session = Session(relay, PEER)
    assert error_code(session.refuse_text()) == errors.PROTO_MALFORMED


async def test_a_frame_that_is_not_a_request(relay: Relay) -> None:
    session = Session(relay, PEER)
    assert error_code(await call(session, session.hello())) == errors.PROTO_UNEXPECTED


async def test_oversized_frame(relay: Relay) -> None:
    session = Session(make_relay(max_frame_bytes=4096, max_envelope_bytes=2048), PEER)
    assert error_code(await session.receive(b"\0" * 5000)) == errors.PROTO_TOO_LARGE


async def test_unknown_failure_is_internal_and_the_connection_lives(
    pair: tuple[Device, Session, Device, Session, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, a_session, _, _, _ = pair

    async def broken(*args: object) -> tuple[int, int]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(a_session.relay.store, "prekey_counts", broken)
    (reply,) = await call(a_session, GetPrekeyStatus(9))
    assert isinstance(reply, Error)
    assert (reply.id, reply.code) == (9, errors.INTERNAL)
    assert "fire" not in reply.message
    assert await call(a_session, Ping(10)) == [Pong(10, a_session.relay.now_ms())]


# --- sending -------------------------------------------------------------------------------


async def test_send_checks(pair: tuple[Device, Session, Device, Session, bytes]) -> None:
    alice, a_session, bob, _, token = pair
    relay = a_session.relay
    assert error_code([await send(a_session, bob, 1, None)]) == errors.SEND_TOKEN_REQUIRED
    assert error_code([await send(a_session, bob, 2, b"\0" * 16)]) == errors.SEND_BAD_TOKEN
    nobody = Device.create("nobody")
    nobody.mailbox = b"\5" * 16
    assert error_code([await send(a_session, nobody, 3, token)]) == errors.SEND_NO_MAILBOX
    big = b"x" * (relay.config.max_envelope_bytes + 1)
    assert error_code([await send(a_session, bob, 4, token, body=big)]) == errors.SEND_TOO_LARGE
    ttl = relay.config.max_ttl + 1
    assert error_code([await send(a_session, bob, 5, token, ttl=ttl)]) == errors.SEND_BAD_TTL
    # alice never set a verifier: nobody can Send to her, only Introduce
    _, _, _ = alice, bob, token


async def test_no_verifier_means_bad_token(relay: Relay) -> None:
    alice, bob = Device.create("alice"), Device.create("bob")
    a_session = await enroll(relay, alice)
    await enroll(relay, bob)
    assert error_code([await send(a_session, bob, 1, b"\1" * 16)]) == errors.SEND_BAD_TOKEN


async def test_send_is_idempotent_by_eid(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, _, token = pair
    assert await send(a_session, bob, 1, token) == Sent(1, eid(1), False)
    assert await send(a_session, bob, 1, token) == Sent(1, eid(1), True)
    assert a_session.relay.metrics.accepted == 1


async def test_token_change_takes_effect(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, token = pair
    assert await call(b_session, SetDeliveryToken(8, b"\7" * 32)) == [Ok(8)]
    assert error_code([await send(a_session, bob, 1, token)]) == errors.SEND_BAD_TOKEN


async def test_introduce_records_the_sender_and_is_limited(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    alice, a_session, bob, b_session, _ = pair
    assert await call(b_session, SetIntroductions(8, True)) == [Ok(8)]
    limit = a_session.relay.config.introductions_per_minute
    for n in range(limit):
        (reply,) = await call(a_session, Introduce(n + 1, bob.mailbox, eid(n + 1), 60, b"hi"))
        assert isinstance(reply, Sent)
    (refused,) = await call(a_session, Introduce(99, bob.mailbox, eid(99), 60, b"hi"))
    assert isinstance(refused, Error)
    assert refused.code == errors.LIMIT_RATE
    assert refused.retry_after > 0
    frames = await pushes(b_session)
    senders = {e.sender for f in frames if isinstance(f, Deliver) for e in f.envelopes}
    assert senders == {alice.address}


async def introduce(session: Session, to: Device, n: int) -> object:
    (reply,) = await call(session, Introduce(n, to.mailbox, eid(n), 60, b"hi"))
    return reply


async def test_introductions_are_closed_by_default(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, _ = pair
    assert error_code([await introduce(a_session, bob, 1)]) == errors.SEND_INTRODUCTIONS_CLOSED
    assert await pushes(b_session) == []
    assert a_session.relay.metrics.accepted == 0


async def test_introductions_open_and_close_with_set_introductions(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    alice, a_session, bob, b_session, _ = pair
    assert await call(b_session, SetIntroductions(8, True)) == [Ok(8)]
    assert await introduce(a_session, bob, 1) == Sent(1, eid(1), False)
    frames = await pushes(b_session)
    assert delivered_eids(frames) == [eid(1)]
    assert [e.sender for f in frames if isinstance(f, Deliver) for e in f.envelopes] == [
        alice.address
    ]
    assert await call(b_session, SetIntroductions(9, False)) == [Ok(9)]
    assert error_code([await introduce(a_session, bob, 2)]) == errors.SEND_INTRODUCTIONS_CLOSED
    # a Send with the delivery token is not affected
    _, _, _, _, token = pair
    assert await send(a_session, bob, 3, token) == Sent(3, eid(3), False)


async def test_set_introductions_needs_authentication(relay: Relay) -> None:
    session = Session(relay, PEER)
    session.hello()
    assert error_code(await call(session, SetIntroductions(1, True))) == errors.AUTH_REQUIRED


async def test_introductions_are_limited_per_recipient() -> None:
    clock = Clock()
    relay = make_relay(
        clock, introductions_per_minute=100, introductions_per_recipient_per_minute=3
    )
    bob, carol = Device.create("bob"), Device.create("carol")
    b_session, c_session = await enroll(relay, bob), await enroll(relay, carol)
    for session in (b_session, c_session):
        assert await call(session, SetIntroductions(2, True)) == [Ok(2)]
    senders = [Device.create(name) for name in ("s1", "s2", "s3", "s4")]
    sessions = [await enroll(relay, sender) for sender in senders]
    for n, session in enumerate(sessions[:3], start=1):
        assert isinstance(await introduce(session, bob, n), Sent)
    refused = await introduce(sessions[3], bob, 4)
    assert isinstance(refused, Error)
    assert refused.code == errors.LIMIT_RATE
    assert refused.retry_after > 0
    # another recipient has a bucket of its own
    assert isinstance(await introduce(sessions[3], carol, 5), Sent)
    # the bucket refills: one more after 20 s (3 per minute)
    clock.now += 20
    assert isinstance(await introduce(sessions[3], bob, 6), Sent)
    assert error_code([await introduce(sessions[3], bob, 7)]) == errors.LIMIT_RATE


# --- rate limits ---------------------------------------------------------------------------


async def test_rate_limit_then_close_on_flood() -> None:
    relay = make_relay(rate_ip_per_s=1.0, rate_ip_burst=5, flood_close_after=20)
    session = Session(relay, PEER)
    replies = [(await call(session, Ping(n)))[0] for n in range(1, 8)]
    assert all(isinstance(r, Pong) for r in replies[:5])
    assert isinstance(replies[5], Error)
    assert (replies[5].id, replies[5].code) == (6, errors.LIMIT_RATE)
    assert replies[5].retry_after == 1000
    assert session.close_code is None
    for n in range(20):
        await call(session, Ping(n))
    assert session.close_code == CLOSE_POLICY
    assert relay.metrics.rejected[errors.LIMIT_RATE] >= 20


async def test_rate_limit_refills_with_time() -> None:
    clock = Clock()
    relay = make_relay(clock, rate_ip_per_s=1.0, rate_ip_burst=1)
    session = Session(relay, PEER)
    assert isinstance((await call(session, Ping(1)))[0], Pong)
    assert isinstance((await call(session, Ping(2)))[0], Error)
    clock.now += 1.0
    assert isinstance((await call(session, Ping(3)))[0], Pong)


async def test_account_limit_spans_connections(relay: Relay) -> None:
    relay = make_relay(rate_account_per_s=1.0, rate_account_burst=3)
    alice = Device.create("alice")
    await enroll(relay, alice)
    one, _ = await login(relay, alice, "192.0.2.10")
    two, _ = await login(relay, alice, "192.0.2.11")
    codes = [type(r).__name__ for s in (one, two, one, two) for r in await call(s, Ping(1))]
    assert codes.count("Error") >= 1


# --- prekeys and certificates ----------------------------------------------------------------


async def test_prekeys_publish_fetch_consumes_one_time_keys(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, _ = pair
    upload = bob.prekeys().upload()
    assert await call(b_session, PublishPrekeys(2, upload)) == [PrekeyStatus(2, 100, 100)]
    (first,) = await call(a_session, FetchPrekeys(3, bob.address))
    (second,) = await call(a_session, FetchPrekeys(4, bob.address))
    assert isinstance(first, PrekeyBundles)
    assert isinstance(second, PrekeyBundles)
    (b1,), (b2,) = first.devices, second.devices
    assert (b1.device, b1.mailbox) == (1, bob.mailbox)
    assert b1.bundle.identity == bob.identity.public
    assert b1.bundle.one_time is not None
    assert b2.bundle.one_time is not None
    assert b1.bundle.one_time.id != b2.bundle.one_time.id
    assert b1.bundle.kem_prekey.id != b2.bundle.kem_prekey.id
    assert await call(b_session, GetPrekeyStatus(5)) == [PrekeyStatus(5, 98, 98)]


async def test_fetch_without_prekeys(pair: tuple[Device, Session, Device, Session, bytes]) -> None:
    _, a_session, bob, _, _ = pair
    assert error_code(await call(a_session, FetchPrekeys(1, bob.address))) == errors.PREKEYS_NONE
    unknown = FetchPrekeys(2, f"nobody@{DOMAIN}")
    assert error_code(await call(a_session, unknown)) == errors.PREKEYS_NONE


async def test_publish_prekeys_of_another_identity(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, _, _, b_session, _ = pair
    upload = Device.create("mallory").prekeys().upload()
    assert error_code(await call(b_session, PublishPrekeys(2, upload))) == errors.AUTH_FAILED


async def test_certificate_verifies_against_the_server_key(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    alice, a_session, _, _, _ = pair
    relay = a_session.relay
    (reply,) = await call(a_session, GetCertificate(4))
    assert isinstance(reply, CertificateIssued)
    cert = reply.certificate
    assert (cert.body.address, cert.body.device) == (alice.address, 1)
    assert cert.body.identity == alice.identity.public
    key = ServerVerifyKey(relay.keys.sig_key_id, relay.suite.suite_id, relay.keys.sig_public, 2**62)
    keyring = StaticKeyring({DOMAIN: [key]})
    verify_certificate(relay.suite, cert, keyring, relay.now_ms())
    lifetime_ms = relay.config.certificate_lifetime * 1000
    assert cert.body.expires == relay.now_ms() + lifetime_ms


# --- delivery ------------------------------------------------------------------------------


async def test_backlog_pushed_in_order_then_drained_then_live(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, token = pair
    b_session.detach()
    for n in range(1, 301):
        assert isinstance(await send(a_session, bob, n, token), Sent)
    session, reply = await login(a_session.relay, bob)
    assert reply.pending == 300
    frames = await pushes(session)
    assert delivered_eids(frames) == [eid(n) for n in range(1, 301)]
    assert frames[-1] == Drained(300)
    assert all(len(f.envelopes) <= 256 for f in frames if isinstance(f, Deliver))
    assert isinstance(await send(a_session, bob, 301, token), Sent)
    assert delivered_eids(await pushes(session)) == [eid(301)]
    assert await pushes(session) == []


async def test_only_ack_deletes(pair: tuple[Device, Session, Device, Session, bytes]) -> None:
    _, a_session, bob, b_session, token = pair
    for n in (1, 2, 3):
        await send(a_session, bob, n, token)
    assert delivered_eids(await pushes(b_session)) == [eid(1), eid(2), eid(3)]
    assert await call(b_session, Ack(5, (eid(1), eid(3), eid(9)))) == [Acked(5, 2)]
    session, reply = await login(a_session.relay, bob)
    assert reply.pending == 1
    assert delivered_eids(await pushes(session)) == [eid(2)]
    # an acked eid stays de-duplicated: re-sending it is not delivered again
    assert await send(a_session, bob, 1, token) == Sent(1, eid(1), True)


async def test_ack_with_id_zero_deletes_without_a_reply(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, token = pair
    for n in (1, 2):
        await send(a_session, bob, n, token)
    assert delivered_eids(await pushes(b_session)) == [eid(1), eid(2)]
    assert await call(b_session, Ack(0, (eid(1),))) == []
    session, reply = await login(a_session.relay, bob)
    assert reply.pending == 1
    assert delivered_eids(await pushes(session)) == [eid(2)]


async def test_envelopes_during_catch_up_neither_lost_nor_doubled(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, token = pair
    b_session.detach()
    for n in range(1, 301):
        await send(a_session, bob, n, token)
    session, _ = await login(a_session.relay, bob)
    frames = await session.next_push()  # the first page only
    for n in range(301, 311):
        await send(a_session, bob, n, token)
    frames += await pushes(session)
    assert sorted(delivered_eids(frames)) == [eid(n) for n in range(1, 311)]


async def test_buffer_overflow_falls_back_to_the_store() -> None:
    relay = make_relay(rate_ip_burst=10_000, rate_account_burst=10_000)
    alice, bob = Device.create("alice"), Device.create("bob")
    a_session, b_session = await enroll(relay, alice), await enroll(relay, bob)
    token, verifier = token_for(bob)
    await call(b_session, SetDeliveryToken(7, verifier))
    total = LIVE_MAX + 50
    for n in range(1, total + 1):
        assert isinstance(await send(a_session, bob, n, token), Sent)
    got = set(delivered_eids(await pushes(b_session)))
    assert got == {eid(n) for n in range(1, total + 1)}


async def test_expired_envelopes_are_never_pushed(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, token = pair
    clock = a_session.relay.clock
    assert isinstance(clock, Clock)
    b_session.detach()
    await send(a_session, bob, 1, token, ttl=10)
    await send(a_session, bob, 2, token, ttl=100)
    clock.now += 11
    session, reply = await login(a_session.relay, bob)
    assert reply.pending == 1
    assert delivered_eids(await pushes(session)) == [eid(2)]
    await send(a_session, bob, 3, token, ttl=5)
    clock.now += 6
    assert delivered_eids(await pushes(session)) == []


async def test_sweeper_counts_expired(pair: tuple[Device, Session, Device, Session, bytes]) -> None:
    _, a_session, bob, _, token = pair
    relay = a_session.relay
    clock = relay.clock
    assert isinstance(clock, Clock)
    await send(a_session, bob, 1, token, ttl=10)
    clock.now += 11
    await relay.sweep()
    assert relay.metrics.expired == 1


async def test_a_new_connection_supersedes_the_old(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    _, a_session, bob, b_session, token = pair
    session, _ = await login(a_session.relay, bob)
    assert b_session.close_code == CLOSE_SUPERSEDED
    await pushes(session)
    await send(a_session, bob, 1, token)
    assert delivered_eids(await pushes(session)) == [eid(1)]
    assert await b_session.next_push() == []


async def test_blob_grant_limits(pair: tuple[Device, Session, Device, Session, bytes]) -> None:
    _, a_session, _, _, _ = pair
    relay = a_session.relay
    too_big = RequestBlobUpload(1, relay.config.max_blob_bytes + 1, 60)
    assert error_code(await call(a_session, too_big)) == errors.BLOB_TOO_LARGE
    (grant,) = await call(a_session, RequestBlobUpload(2, 5, 60))
    assert isinstance(grant, BlobGrant)
    assert not await relay.put_blob(grant.blob, b"\0" * 32, b"hello")
    assert not await relay.put_blob(grant.blob, grant.upload_token, b"hello!")
    assert await relay.put_blob(grant.blob, grant.upload_token, b"hello")
    assert await relay.get_blob(grant.blob) == b"hello"


async def test_stored_envelope_fields(pair: tuple[Device, Session, Device, Session, bytes]) -> None:
    _, a_session, bob, b_session, token = pair
    await send(a_session, bob, 1, token, ttl=60, body=b"sealed")
    (frame,) = await pushes(b_session)
    assert isinstance(frame, Deliver)
    (env,) = frame.envelopes
    now = a_session.relay.now_ms()
    assert (env.ts, env.expires, env.origin, env.sender, env.body) == (
        now,
        now + 60_000,
        DOMAIN,
        None,
        b"sealed",
    )
    assert isinstance(StoredEnvelope, type)


async def test_live_pushes_keep_seq_order_when_offers_arrive_out_of_order(
    pair: tuple[Device, Session, Device, Session, bytes],
) -> None:
    """Tasks woken by one group commit resume in any order, so the hub may hand over
    seq 12 before seq 10; the pushes still follow the mailbox order."""
    _, _, bob, b_session, _ = pair
    now = b_session.relay.now_ms()
    for seq in (12, 10, 13, 11):
        env = StoredEnvelope(bob.mailbox, eid(seq), seq, now, now + 60_000, "x", None, b"b")
        b_session.offer(env)
    assert delivered_eids(await pushes(b_session)) == [eid(10), eid(11), eid(12), eid(13)]


async def test_flood_interleaved_with_passing_frames_is_closed() -> None:
    """The probe's pattern: runs of refusals shorter than ``flood_close_after``, each
    broken by one frame that passes once the bucket refilled, must still close (and once
    it is due, nothing more is answered)."""
    clock = Clock()
    relay = make_relay(clock, rate_ip_per_s=1.0, rate_ip_burst=1, flood_close_after=20)
    session = Session(relay, PEER)
    for cycle in range(10):
        clock.now += 1.0
        assert isinstance((await call(session, Ping(cycle)))[0], Pong)
        for n in range(10):
            assert error_code(await call(session, Ping(100 + n))) == errors.LIMIT_RATE
            if session.close_code is not None:
                break
        if session.close_code is not None:
            break
    assert session.close_code == CLOSE_POLICY
    assert cycle < 5
    assert await call(session, Ping(1000)) == []


async def test_flood_of_garbage_is_closed(relay: Relay) -> None:
    session = Session(relay, PEER)
    session.hello()
    for _ in range(relay.config.flood_close_after):
        assert session.close_code is None
        (reply,) = await session.receive(b"\xc1")
        assert (reply.id, reply.code) == (0, errors.PROTO_MALFORMED)
    assert session.close_code == CLOSE_POLICY


async def test_refusals_spread_over_time_do_not_close() -> None:
    """A client that is refused now and then (below ``flood_close_after`` per window)
    keeps its connection."""
    clock = Clock()
    relay = make_relay(clock, rate_ip_per_s=1.0, rate_ip_burst=1, flood_close_after=20)
    session = Session(relay, PEER)
    for cycle in range(50):
        clock.now += 1.0
        assert isinstance((await call(session, Ping(cycle)))[0], Pong)
        assert error_code(await call(session, Ping(1000 + cycle))) == errors.LIMIT_RATE
    assert session.close_code is None
