"""Receiving through ``Client``: de-duplication by eid, ack only after the message is saved,
garbage dropped, nothing doubled across a restart. The node is the scripted fake of
``netfakes``; the devices and their end-to-end crypto are real."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import trio
import trio.testing

from client import persist
from client.app import PURGE_IDS_EVERY_MS, Client
from client.content import Content, pack
from client.inbox import Inbox
from client.records import AccountInfo
from client.sealed import issue_certificate
from client.serverkeys import PinnedKeyring
from client.session import Device
from client.store.base import NS_SEEN
from client.store.memory import MemoryStore
from client.upkeep import RENEW_CHECK_SECONDS
from suites import labels
from tests.client.netfakes import FakeNode
from tests.client.pairs import DAY_MS, Domain
from tests.client.trustfakes import Root, certification, root, statement
from wire import encode
from wire.e2e import SenderCertificate
from wire.relay import Ack, Envelope, GetCertificate, Ping, Pong
from wire.server import (
    DocumentSignature,
    ServerKeyDocument,
    ServerKeyDocumentBody,
    ServerVerifyKeyEntry,
)

DOMAIN = "example.org"


def _document(domain: Domain, by: Root | None = None) -> ServerKeyDocument:
    """The domain's key document, certified by the root ``by`` if given."""
    key = domain.verify_key()
    now = int(domain.clock.now * 1000)
    body = ServerKeyDocumentBody(
        server=domain.name,
        suite=domain.suite.suite_id,
        verify_keys=(ServerVerifyKeyEntry(key.key_id, key.suite, key.public, key.not_after),),
        kem_keys=(),
        endpoints=(),
        issued=now,
        valid_until=now + 7 * DAY_MS,
    )
    sig = domain.suite.sig.sign(domain.server_key, encode(body), labels.CTX_SERVER_KEY_DOCUMENT)
    certs = () if by is None else (certification(by, domain.name, key.public, now),)
    return ServerKeyDocument(
        body=body, signatures=(DocumentSignature(key.key_id, sig),), certifications=certs
    )


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.domain = Domain.create("xwing", DOMAIN)
        self.doc = _document(self.domain)
        keyring = PinnedKeyring()
        keyring.pin(self.doc)
        self.alice = self.domain.device("alice", keyring)  # type: ignore[arg-type]
        self.bob = self.domain.device("bob", keyring)  # type: ignore[arg-type]
        self.bob.certificate = issue_certificate(
            self.domain.suite,
            self.domain.server_key,
            self.domain.key_id,
            self.bob.address,
            1,
            self.bob.identity.public,
            int(self.domain.clock.now * 1000) + 30 * DAY_MS,
        )
        self.alice.start_session(self.bob.pool.bundle(self.bob.address, 1))
        self.store = MemoryStore()
        persist.save_device(self.store, self.bob)
        info = AccountInfo("http://node.invalid", encode(self.doc), b"\x01" * 16, b"\x02" * 16)
        persist.save_account_info(self.store, info)
        self.node = FakeNode(server=DOMAIN)
        self.save_dir = tmp_path

    def envelope(self, device: Device, text: str) -> Envelope:
        content = Content(text, 1, b"\x03" * 16, b"\x04" * 16, None, ())
        body = device.encrypt(self.bob.address, 1, pack(content))
        expires = int(self.domain.clock.now * 1000) + DAY_MS
        origin = device.address.rpartition("@")[2]
        return Envelope(os.urandom(16), 1, expires, origin, None, body)

    def client(self) -> Client:
        return Client.load(
            self.store,
            save_dir=self.save_dir,
            clock=self.domain.clock,
            connector=self.node.connector,
        )

    async def run_until_drained(self) -> Client:
        client = self.client()
        async with client.online():
            with trio.fail_after(30):
                await client.drained.wait()
                await trio.testing.wait_all_tasks_blocked()  # the node read the last acks
        return client


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def _texts(store: MemoryStore) -> list[str]:
    return [m.text for m in Inbox(store).messages()]


async def test_duplicates_are_saved_once_and_acked(setup: Setup) -> None:
    first = setup.envelope(setup.alice, "one")
    second = setup.envelope(setup.alice, "two")
    setup.node.backlog = [first, first, second, first]
    await setup.run_until_drained()
    assert sorted(_texts(setup.store)) == ["one", "two"]
    assert setup.node.acked.count(first.eid) == 3  # every copy acked
    assert second.eid in setup.node.acked


async def test_ack_only_after_the_message_is_saved(setup: Setup) -> None:
    env = setup.envelope(setup.alice, "saved before ack")
    seen_at_ack: list[list[str]] = []

    def on_ack(ack: Ack) -> None:
        seen_at_ack.append(_texts(setup.store))

    setup.node.on_ack = on_ack
    setup.node.backlog = [env]
    await setup.run_until_drained()
    assert seen_at_ack == [["saved before ack"]]
    # The session advanced and was saved with the message: a reload decrypts the next one.
    reloaded = persist.load_device(setup.store, setup.bob.keyring)
    assert reloaded.has_session(setup.alice.address, 1)


async def test_garbage_and_forgeries_are_dropped_but_acked(setup: Setup) -> None:
    garbage = Envelope(os.urandom(16), 1, 2**40, DOMAIN, None, os.urandom(1024))
    mallory = setup.domain.device("mallory", setup.bob.keyring)
    mallory.start_session(setup.bob.pool.bundle(setup.bob.address, 1))
    introduced = setup.envelope(mallory, "i am alice")
    lying = Envelope(
        introduced.eid, 1, introduced.expires, DOMAIN, "alice@example.org", introduced.body
    )
    setup.node.backlog = [garbage, lying]
    await setup.run_until_drained()
    assert _texts(setup.store) == []
    assert set(setup.node.acked) == {garbage.eid, lying.eid}


async def test_redelivery_after_restart_is_not_doubled(setup: Setup) -> None:
    env = setup.envelope(setup.alice, "only once")
    setup.node.backlog = [env]
    await setup.run_until_drained()
    # The ack was lost: the node pushes it again to the restarted client.
    await setup.run_until_drained()
    assert _texts(setup.store) == ["only once"]
    assert setup.node.acked.count(env.eid) == 2
    assert setup.node.connections == 2


async def test_reply_uses_the_token_from_the_content(setup: Setup) -> None:
    setup.node.backlog = [setup.envelope(setup.alice, "write back")]
    client = await setup.run_until_drained()
    contact = persist.load_contact(setup.store, setup.alice.address, 1)
    assert contact is not None
    assert (contact.mailbox, contact.delivery_token) == (b"\x04" * 16, b"\x03" * 16)
    setup.node.backlog = []
    async with client.online():
        with trio.fail_after(30):
            result = await client.send(setup.alice.address, "reply")
    assert result.failed == {}
    (sent,) = [f for f in setup.node.received if hasattr(f, "token")]
    assert sent.token == b"\x03" * 16
    assert sent.mailbox == b"\x04" * 16
    assert setup.alice.decrypt(sent.body).sender == setup.bob.address


async def test_long_catch_up_drains_with_fire_and_forget_acks(setup: Setup) -> None:
    envelopes = [Envelope(os.urandom(16), 1, 2**40, DOMAIN, None, b"x") for _ in range(300)]
    envelopes.append(setup.envelope(setup.alice, "after the flood"))
    setup.node.backlog = envelopes
    await setup.run_until_drained()
    assert _texts(setup.store) == ["after the flood"]
    assert set(setup.node.acked) == {env.eid for env in envelopes}
    acks = [f for f in setup.node.received if isinstance(f, Ack)]
    assert acks
    assert all(f.id == 0 for f in acks)


async def test_a_refused_ack_does_not_end_receiving(setup: Setup) -> None:
    setup.node.refuse[Ack] = ("limit.rate", 1)
    setup.node.backlog = [setup.envelope(setup.alice, t) for t in ("one", "two", "three")]
    client = setup.client()
    async with client.online():
        with trio.fail_after(30):
            await client.drained.wait()
            await trio.testing.wait_all_tasks_blocked()
        assert sorted(_texts(setup.store)) == ["one", "three", "two"]
        assert isinstance(await client.link.request(Ping(id=0)), Pong)  # still online


def _quarantined(setup: Setup) -> list[bytes]:
    return [env.eid for env in persist.quarantined(setup.store)]


async def test_an_envelope_that_may_open_later_is_quarantined_and_acked(setup: Setup) -> None:
    other = Domain.create("xwing", "other.org", clock=setup.domain.clock)
    other_doc = _document(other)
    keyring = PinnedKeyring()
    keyring.pin(setup.doc)
    keyring.pin(other_doc)
    carol = other.device("carol", keyring)  # type: ignore[arg-type]
    carol.start_session(setup.bob.pool.bundle(setup.bob.address, 1))
    # Bob has not pinned other.org's key document: carol's certificate does not verify yet.
    env = setup.envelope(carol, "from another domain")
    setup.node.backlog = [env]
    client = await setup.run_until_drained()
    assert _texts(setup.store) == []
    assert setup.node.acked == [env.eid]
    assert _quarantined(setup) == [env.eid]
    assert client.quarantine_count == 1
    # Redelivered: a duplicate, not quarantined twice.
    await setup.run_until_drained()
    assert _quarantined(setup) == [env.eid]
    # Once the domain's keys are known the envelope opens.
    later = setup.client()
    later.keyring.pin(other_doc)
    opened = later.retry_quarantined()
    assert [m.text for m in opened] == ["from another domain"]
    assert _texts(setup.store) == ["from another domain"]
    assert _quarantined(setup) == []


async def test_a_sender_of_another_domain_than_the_origin_is_refused(setup: Setup) -> None:
    """A node may only carry its own users: an envelope whose sealed sender is of another
    domain than the node that delivered it is dropped, even though it decrypts.

    bob holds other.org's keys as the home root vouches for them (``client.domaintrust``):
    other.org's document certified by its root, which the home root's statement lists."""
    other = Domain.create("xwing", "other.org", clock=setup.domain.clock)
    home_root, other_root = root("example.org"), root("other.org")
    now = int(setup.domain.clock.now * 1000)
    home_doc = _document(setup.domain, home_root)
    info = AccountInfo("http://node.invalid", encode(home_doc), b"\x01" * 16, b"\x02" * 16)
    persist.save_account_info(setup.store, info)
    persist.save_home_roots(setup.store, (home_root[0],))
    peers = statement(home_root, DOMAIN, {"other.org": other_root}, now)
    persist.save_peer_roots(setup.store, peers)
    keyring = PinnedKeyring()
    keyring.pin(home_doc)
    keyring.pin(_document(other))
    carol = other.device("carol", keyring)  # type: ignore[arg-type]
    carol.start_session(setup.bob.pool.bundle(setup.bob.address, 1))
    honest = setup.envelope(carol, "via other.org")
    other_doc = _document(other, other_root)
    persist.save_domain_document(setup.store, "other.org", encode(other_doc))
    carried = dataclasses.replace(honest, eid=os.urandom(16), origin="third.example")
    setup.node.backlog = [carried]
    await setup.run_until_drained()
    assert _texts(setup.store) == []
    # control: the same kind of envelope from its own domain opens
    fresh = setup.envelope(carol, "via other.org")
    setup.node.backlog = [fresh]
    await setup.run_until_drained()
    assert _texts(setup.store) == ["via other.org"]


async def test_quarantined_envelopes_are_purged_when_they_expire(setup: Setup) -> None:
    env = Envelope(os.urandom(16), 1, 5_000, DOMAIN, None, b"x")
    later = Envelope(os.urandom(16), 1, 2**40, DOMAIN, None, b"y")
    assert persist.quarantine(setup.store, env)
    assert persist.quarantine(setup.store, later)
    assert persist.purge_quarantine(setup.store, 5_000) == 1
    assert _quarantined(setup) == [later.eid]


async def test_garbage_is_not_quarantined(setup: Setup) -> None:
    garbage = Envelope(os.urandom(16), 1, 2**40, DOMAIN, None, os.urandom(1024))
    setup.node.backlog = [garbage]
    client = await setup.run_until_drained()
    assert setup.node.acked == [garbage.eid]
    assert _quarantined(setup) == []
    assert client.quarantine_count == 0


def _certificate(setup: Setup, days: int, identity: object = None) -> SenderCertificate:
    return issue_certificate(
        setup.domain.suite,
        setup.domain.server_key,
        setup.domain.key_id,
        setup.bob.address,
        1,
        identity or setup.bob.identity.public,  # type: ignore[arg-type]
        int(setup.domain.clock.now * 1000) + days * DAY_MS,
    )


def _certificate_requests(setup: Setup) -> int:
    return sum(isinstance(f, GetCertificate) for f in setup.node.received)


async def test_certificate_is_renewed_while_connected(
    setup: Setup, autojump_clock: trio.testing.MockClock
) -> None:
    client = setup.client()
    async with client.online():
        with trio.fail_after(30):
            await client.drained.wait()
        assert _certificate_requests(setup) == 0  # 30 days left: nothing to do
        setup.domain.clock.now += 29 * DAY_MS / 1000
        fresh = _certificate(setup, 30)
        setup.node.certificate = fresh
        await trio.sleep(RENEW_CHECK_SECONDS + 1)
        assert _certificate_requests(setup) == 1
        assert client.device.certificate == fresh
    reloaded = persist.load_device(setup.store, setup.bob.keyring)
    assert reloaded.certificate == fresh


@pytest.mark.parametrize("forgery", ["other identity", "other key"])
async def test_a_renewed_certificate_that_does_not_check_is_not_saved(
    setup: Setup, forgery: str
) -> None:
    setup.bob.certificate = _certificate(setup, 1)  # due for renewal on connecting
    persist.save_device(setup.store, setup.bob)
    if forgery == "other identity":
        bad = _certificate(setup, 30, setup.alice.identity.public)
    else:
        rogue = Domain.create("xwing", DOMAIN, clock=setup.domain.clock)
        bad = issue_certificate(
            rogue.suite,
            rogue.server_key,
            setup.domain.key_id,
            setup.bob.address,
            1,
            setup.bob.identity.public,
            int(setup.domain.clock.now * 1000) + 30 * DAY_MS,
        )
    setup.node.certificate = bad
    client = await setup.run_until_drained()
    assert _certificate_requests(setup) == 1
    assert client.device.certificate == setup.bob.certificate
    reloaded = persist.load_device(setup.store, setup.bob.keyring)
    assert reloaded.certificate == setup.bob.certificate


async def test_a_refused_renewal_keeps_the_client_online(setup: Setup) -> None:
    setup.bob.certificate = _certificate(setup, 1)
    persist.save_device(setup.store, setup.bob)
    setup.node.refuse[GetCertificate] = ("limit.rate", 1)
    setup.node.backlog = [setup.envelope(setup.alice, "still here")]
    client = await setup.run_until_drained()
    assert _texts(setup.store) == ["still here"]
    assert client.device.certificate == setup.bob.certificate


async def test_expired_seen_ids_are_purged_while_online(
    setup: Setup, autojump_clock: trio.testing.MockClock
) -> None:
    now = int(setup.domain.clock.now * 1000)
    persist.mark_seen(setup.store, b"\x01" * 16, now - 1)
    persist.mark_seen(setup.store, b"\x02" * 16, now + DAY_MS)
    persist.quarantine(setup.store, Envelope(b"\x03" * 16, 1, now - 1, DOMAIN, None, b"x"))
    client = setup.client()
    async with client.online():
        with trio.fail_after(30):
            await client.drained.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert [eid for eid, _ in setup.store.items(NS_SEEN)] == [b"\x02" * 16]
        assert _quarantined(setup) == []
        # Later, while still online, the other one expires too.
        setup.domain.clock.now += 2 * DAY_MS / 1000
        await trio.sleep(2 * PURGE_IDS_EVERY_MS / 1000)
        assert setup.store.items(NS_SEEN) == []
