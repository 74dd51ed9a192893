"""``node.accept``: the one way an envelope enters a mailbox, driven directly (the paths
through it are tested with the session in test_session, test_batch, test_shared_batch and
the federation tests)."""

from __future__ import annotations

import hashlib
from typing import Final

from node import errors
from node.accept import Accepted, Delivery, NotStored, Recipient
from node.errors import NodeError
from node.relay import Relay
from node.store import DeviceRecord, StoredEnvelope, StoreUnavailable
from suites import labels
from tests.node.harness import DOMAIN, eid, make_relay

NOW_MS: Final = 1_800_000_000_000
TOKEN: Final = b"T" * 16


async def account(relay: Relay, name: str, *, introductions: bool = False) -> bytes:
    """A mailbox of a new account ``name`` whose delivery token is :data:`TOKEN`."""
    store, mailbox = relay.store, hashlib.sha256(name.encode()).digest()[:16]
    address = f"{name}@{DOMAIN}"
    await store.add_invite(name.encode(), name, NOW_MS + 1)
    assert await store.register(
        name.encode(), name, DeviceRecord(address, 1, b"id", mailbox, 0), NOW_MS
    )
    verifier = hashlib.sha256(labels.DELIVERY_TOKEN_HASH_INFO + TOKEN).digest()
    await store.set_token_verifier(address, verifier)
    await store.set_accepts_introductions(address, introductions)
    return mailbox


def one(mailbox: bytes, n: int, token: bytes | None = TOKEN, until: int | None = None) -> Delivery:
    """A Send's delivery: one recipient named with ``token``."""
    recipient = Recipient(mailbox, token)
    return Delivery(eid(n), b"body %d" % n, (recipient,), 0, DOMAIN, until=until)


async def pending(relay: Relay, mailbox: bytes) -> list[StoredEnvelope]:
    return await relay.ports.mailboxes.pending(mailbox, 0, 100, NOW_MS)


async def test_plain_and_fan_out_deliveries_of_one_call_are_stored_and_answered() -> None:
    relay = make_relay()
    a, b = await account(relay, "alice"), await account(relay, "bob", introductions=True)
    fan_out = Delivery(
        eid(2),
        b"group body",
        (Recipient.named(a, TOKEN), Recipient.named(b, None), Recipient.named(a, TOKEN)),
        0,
        DOMAIN,
        "carol@relay.test",
        shared=True,
    )
    outcomes = await relay.intake.accept([one(a, 1), fan_out, one(a, 1)])
    assert outcomes == [
        Accepted((True,), 1),
        Accepted((True, True, True), 2),  # alice named twice: stored once
        Accepted((False,), 1),  # the same eid again: a duplicate
    ]
    assert [(e.eid, e.body, e.sender) for e in await pending(relay, a)] == [
        (eid(1), b"body 1", None),
        (eid(2), b"group body", None),
    ]
    ((sender, body),) = [(e.sender, e.body) for e in await pending(relay, b)]
    assert (sender, body) == ("carol@relay.test", b"group body")  # an introduction
    assert relay.metrics.accepted == 3


async def test_refusals_are_per_recipient_and_per_delivery() -> None:
    relay = make_relay()
    a = await account(relay, "alice")
    too_large = Delivery(eid(3), b"x" * (relay.config.max_envelope_bytes + 1), (), 0, DOMAIN)
    outcomes = await relay.intake.accept(
        [one(a, 1, b"wrong" * 4), one(b"?" * 16, 2), too_large, one(a, 4, None)]
    )
    codes = [
        o.verdicts[0].code
        if isinstance(o, Accepted) and isinstance(o.verdicts[0], NodeError)
        else o.code
        if isinstance(o, NodeError)
        else o
        for o in outcomes
    ]
    assert codes == [
        errors.SEND_BAD_TOKEN,
        errors.SEND_NO_MAILBOX,
        errors.SEND_TOO_LARGE,
        errors.SEND_TOKEN_REQUIRED,
    ]
    assert await pending(relay, a) == []


async def test_a_failed_read_refuses_the_rest_and_the_earlier_ones_are_stored() -> None:
    relay = make_relay()
    a, b = await account(relay, "alice"), await account(relay, "bob")
    relay.intake.shared_store = True  # every check reads the verifier
    failure = StoreUnavailable("down")
    reads = 0

    async def verifier(address: str) -> bytes | None:
        nonlocal reads
        reads += 1
        if address.startswith("bob"):
            raise failure
        return hashlib.sha256(labels.DELIVERY_TOKEN_HASH_INFO + TOKEN).digest()

    relay.store.token_verifier = verifier  # type: ignore[method-assign]
    refused = NodeError(errors.LIMIT_RATE, "too many requests")
    outcomes = await relay.intake.accept([one(a, 1), refused, one(b, 2), refused, one(a, 3)])
    assert outcomes == [Accepted((True,), 1), refused, failure, failure, failure]
    assert reads == 2
    assert [e.eid for e in await pending(relay, a)] == [eid(1)]


async def test_a_failed_store_call_is_the_outcome_of_each_delivery_it_held() -> None:
    relay = make_relay()
    a = await account(relay, "alice")
    failure = StoreUnavailable("down")

    async def enqueue_many(envelopes: list[StoredEnvelope]) -> list[tuple[bool, int]]:
        raise failure

    relay.store.enqueue_many = enqueue_many  # type: ignore[method-assign]
    outcomes = await relay.intake.accept([one(a, 1), one(a, 2, b"wrong" * 4), one(a, 3)])
    assert outcomes[0] == outcomes[2] == NotStored(failure)
    refused = outcomes[1]  # nothing of it was to be stored: it keeps its own refusal
    assert isinstance(refused, Accepted)
    assert isinstance(refused.verdicts[0], NodeError)
    assert (refused.verdicts[0].code, refused.mailboxes) == (errors.SEND_BAD_TOKEN, 0)
    assert await pending(relay, a) == []
    assert relay.metrics.accepted == 0


async def test_a_federation_item_lives_no_longer_than_its_own_expiry() -> None:
    relay = make_relay()
    a = await account(relay, "alice")
    until = relay.now_ms() + 5_000
    (outcome,) = await relay.intake.accept([one(a, 1, until=until)])
    assert outcome == Accepted((True,), 1)
    (stored,) = await relay.ports.mailboxes.pending(a, 0, 10, relay.now_ms())
    assert stored.expires == until


# --- anonymous deliveries: the per-mailbox limit (issue 20) ------------------------------


async def test_anonymous_deliveries_spend_the_mailbox_allowance_only_with_a_valid_token() -> None:
    """An envelope that came over an anonymous connection spends one token of its
    recipient mailbox once its delivery token matched; a bad token refuses it without
    spending any, another mailbox keeps its own, and a logged-in sender spends none."""
    relay = make_relay(rate_sealed_mailbox_per_s=0.001, rate_sealed_mailbox_burst=2)
    a, b = await account(relay, "alice"), await account(relay, "bob")

    def anonymous(mailbox: bytes, n: int, token: bytes = TOKEN) -> Delivery:
        return one(mailbox, n, token)._replace(anonymous=True)

    bad = [anonymous(a, n, b"wrong" * 4) for n in range(5)]
    outcomes = await relay.intake.accept([*bad, anonymous(a, 10), anonymous(a, 11)])
    codes = [o.verdicts[0] for o in outcomes if isinstance(o, Accepted)]
    assert [c.code for c in codes[:5] if isinstance(c, NodeError)] == [errors.SEND_BAD_TOKEN] * 5
    assert codes[5:] == [True, True]
    (limited, other, logged_in) = await relay.intake.accept(
        [anonymous(a, 12), anonymous(b, 13), one(a, 14)]
    )
    assert isinstance(limited, Accepted)
    (refusal,) = limited.verdicts
    assert isinstance(refusal, NodeError)
    assert refusal.code == errors.LIMIT_MAILBOX
    assert refusal.retry_after > 0
    assert other == Accepted((True,), 1)
    assert logged_in == Accepted((True,), 1)
    assert sorted(relay.sealed_mailbox_limit.keys()) == sorted([a.hex(), b.hex()])
