"""Federation end to end: three domains as separate ``sealrelay node serve`` processes.

alpha (A), bravo (B) and charlie (C) run for the whole module, each pinning the others'
development roots (``node.devfed.prepare``); delta (D) has keys, a root and a pin in every
configuration but no node: where its endpoint should be, a test serves key documents of its
choosing. Users are enrolled once; each test loads their clients from the saved state.

1. users of A and B converse, with attachments, both ways (a first-contact burst larger
   than B's per-recipient introduction limit arrives whole);
2. A's and B's files, logs and metrics never hold the other side's user (address, mailbox);
3. C forging a sender certificate for an address at A: B's client refuses it;
4. a captured transaction replayed to B, or re-signed with an old time, is refused;
5. a key document for D that breaks B's pin is refused, loudly, and so are requests
   signed by its keys; D's genuine document is accepted;
6. A rotating its server keys during traffic A -> B loses and duplicates nothing;
7. clients trust another domain's keys only through their own agency's root: enrolled
   clients pinned their home root, and a user of C whose node serves no peer-roots
   statement reaches no one at A until C's operator puts it back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest
import trio

from client import persist
from client.app import Client
from client.cli import _home_roots as home_root_fingerprints
from client.errors import Refused, UntrustedDomain
from client.inbox import StoredMessage
from client.store.base import NS_SEEN
from federation.documents import verify_document
from node.fed import NOTARY_PATH as NOTARY
from node.fed.outbound import SEND_PATH
from node.keys import ServerKeys, generate
from node.peerroots import PEER_ROOTS_FILE
from node.rootkeys import certify, load_root
from tests.integration.fedharness import (
    DocumentServer,
    LocalFederation,
    Person,
    SignedRequest,
    converse,
    data_files,
    metric,
    put,
    sign,
    texts,
    transaction,
    wait_until,
)
from tests.integration.nodeproc import run_cli
from wire import decode, encode
from wire.federation import (
    ITEM_OK,
    MAX_TXN_BYTES,
    NotaryAnswer,
    Transaction,
    TransactionItem,
    TransactionResult,
)
from wire.server import ServerKeyDocument

A: Final = "alpha.test"
B: Final = "bravo.test"
C: Final = "charlie.test"
D: Final = "delta.test"
INTRO_LIMIT: Final = 60
"""Introductions to one recipient per minute at every node (the default is 30)."""
EXTRA: Final = f"introductions_per_recipient_per_minute = {INTRO_LIMIT}"
ACCEPTED: Final = "sealrelay_envelopes_accepted_total"
REFUSED: Final = "sealrelay_federation_refused_total"
KEY_REFUSALS: Final = "sealrelay_federation_key_refusals_total"


@dataclass
class World:
    fed: LocalFederation
    base: Path
    alice: Person  # A
    bob: Person  # B
    carol: Person  # C
    mallory: Person  # C, the forger
    bert: Person  # B, mallory's target


async def _enroll_all(fed: LocalFederation, base: Path) -> dict[str, Person]:
    who = {"alice": A, "bob": B, "carol": C, "mallory": C, "bert": B}
    return await fed.enroll_all({name: (domain, base / name) for name, domain in who.items()})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("federation")
    fed = LocalFederation(base / "fed", [A, B, C, D], extra=EXTRA)
    try:
        fed.start(A, B, C)
        people = trio.run(_enroll_all, fed, base)
        yield World(fed, base, **people)
    finally:
        fed.close()


def _file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def _message(client: Client, text: str) -> StoredMessage | None:
    return next((m for m in client.inbox.messages() if m.text == text), None)


async def _settled(client: Client, text: str, within: float = 30.0) -> StoredMessage:
    """The message ``text`` once its attachments are downloaded (or given up)."""

    def done() -> bool:
        msg = _message(client, text)
        return msg is not None and msg.settled

    await wait_until(done, within, f"{text!r} with its attachments")
    msg = _message(client, text)
    assert msg is not None
    return msg


def _check_attachment(msg: StoredMessage, data: bytes) -> None:
    (att,) = msg.attachments
    assert att.error is None, att.error
    assert att.path is not None
    assert Path(att.path).read_bytes() == data
    assert att.sha256 == hashlib.sha256(data).digest()


# --- 1. conversation --------------------------------------------------------------------------


async def test_users_of_two_domains_converse_with_attachments_both_ways(
    world: World, tmp_path: Path
) -> None:
    alice, bob = world.alice.load(), world.bob.load()
    b_log = world.fed.nodes[B].log_path
    log_before = len(b_log.read_bytes())
    first = [f"first contact {i}" for i in range(INTRO_LIMIT + 4)]
    report = _file(tmp_path / "report.pdf", 300_000)
    photo = _file(tmp_path / "photo.jpg", 150_000)
    async with alice.online(), bob.online():
        # Before bob answers, alice has no delivery token of his: every message is an
        # introduction, and B takes INTRO_LIMIT a minute for bob; the rest must wait at A.
        for text in first:
            assert not (await alice.send(bob.device.address, text)).failed
        await wait_until(lambda: set(first) <= set(texts(bob)), 30, "the first contacts")

        sent = await alice.send(bob.device.address, "the report", [tmp_path / "report.pdf"])
        assert not sent.failed
        got = await _settled(bob, "the report")
        assert got.sender == alice.device.address
        _check_attachment(got, report)

        sent = await bob.send(alice.device.address, "a photo back", [tmp_path / "photo.jpg"])
        assert not sent.failed
        back = await _settled(alice, "a photo back")
        assert back.sender == bob.device.address
        _check_attachment(back, photo)

        assert not (await alice.send(bob.device.address, "thanks")).failed
        await wait_until(lambda: "thanks" in texts(bob), 20, "a message with the token")

    received = texts(bob)
    for text in [*first, "the report", "thanks"]:
        assert received.count(text) == 1, text
    assert texts(alice).count("a photo back") == 1
    # The burst did go over B's limit (else this test proved nothing about it).
    b_new = b_log.read_bytes()[log_before:].decode()
    assert '"code": "limit.rate"' in b_new, "B never rate-limited the introductions"
    a_metrics = await world.fed.metrics(A)
    assert metric(a_metrics, "sealrelay_federation_dropped_total") == 0


# --- 2. who sees what -------------------------------------------------------------------------


def _holders(paths: list[Path], needles: dict[str, bytes]) -> dict[str, list[str]]:
    """For each needle, the files among ``paths`` whose raw bytes contain it."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    for path in paths:
        data = path.read_bytes()
        for name, needle in needles.items():
            if needle in data:
                found[name].append(path.name)
    return found


def _forms(address: str, mailbox: bytes) -> dict[str, bytes]:
    return {
        "address": address.encode(),
        "mailbox": mailbox,
        "mailbox hex": mailbox.hex().encode(),
        "mailbox HEX": mailbox.hex().upper().encode(),
    }


async def test_neither_node_keeps_the_other_sides_user(world: World, tmp_path: Path) -> None:
    fed = world.fed
    alice, bob = world.alice.load(), world.bob.load()
    note = _file(tmp_path / "note.txt", 20_000)
    async with alice.online(), bob.online():
        await converse(alice, bob)
        sent = await alice.send(bob.device.address, "private", [tmp_path / "note.txt"])
        assert not sent.failed
        _check_attachment(await _settled(bob, "private"), note)
        assert not (await bob.send(alice.device.address, "private too")).failed
        await wait_until(lambda: "private too" in texts(alice), 20, "bob's answer")
    metrics = {A: await fed.metrics(A), B: await fed.metrics(B)}

    for home, own, other in ((A, world.alice, world.bob), (B, world.bob, world.alice)):
        node = fed.nodes[home]
        paths = [*data_files(node.data_dir), node.log_path]
        names = [p.name for p in paths]
        assert any(n.endswith("-wal") for n in names) or "node.sqlite3" in names
        leaks = _holders(paths, _forms(other.address, other.mailbox))
        assert not any(leaks.values()), f"{home} keeps {other.address}: {leaks}"
        for name, needle in _forms(other.address, other.mailbox).items():
            assert needle.decode("latin-1") not in metrics[home], f"{name} in {home}'s metrics"
        # Control: the scan does find this node's own user in its files.
        own_found = _holders(paths, {"address": own.address.encode(), "mailbox": own.mailbox})
        assert own_found["address"], f"{own.address} not found in {home}'s files"
        assert own_found["mailbox"], f"{own.address}'s mailbox not found in {home}'s files"


# --- 3. forged sender certificate ---------------------------------------------------------------


async def test_a_certificate_forged_by_another_domain_is_refused_by_the_recipient(
    world: World,
) -> None:
    fed = world.fed
    carol, mallory, bert = world.carol.load(), world.mallory.load(), world.bert.load()
    async with carol.online(), mallory.online(), bert.online():
        # bert holds A's and C's keys: what follows fails on the signature, not for
        # want of keys.
        await bert.domain_document(A)
        await bert.domain_document(C)
        # Controls: honest messages of C's users arrive.
        await converse(carol, bert)
        assert not (await mallory.send(bert.device.address, "honest mallory")).failed
        await wait_until(lambda: "honest mallory" in texts(bert), 20, "mallory's honest message")
        honest = _message(bert, "honest mallory")
        assert honest is not None
        assert honest.sender == mallory.device.address

        # C signs a sender certificate for an address at A with its own server key, and
        # mallory starts a new session under that address (so that only the certificate
        # is wrong: without the checks, this message would open).
        keys = fed.keys(C)
        forged_address = f"mallory@{A}"
        mallory.device.certificate = keys.issue_certificate(
            forged_address,
            mallory.device.device_id,
            mallory.device.identity.public,
            int(time.time() * 1000),
            86_400,
        )
        mallory.device.address = forged_address
        mallory.device.sessions.clear()
        received = metric(await fed.metrics(B), "sealrelay_federation_received_total", origin=C)
        forged = await mallory.send(bert.device.address, "forged")
        assert not forged.failed
        (eid,) = forged.eids
        await wait_until(
            lambda: bert.store.get(NS_SEEN, eid) is not None, 20, "bert opening the forgery"
        )
        bert.retry_quarantined()
        after = metric(await fed.metrics(B), "sealrelay_federation_received_total", origin=C)
    assert after == received + 1, "B did not carry the forged envelope to bert"
    assert "forged" not in texts(bert)
    assert all(m.sender != forged_address for m in bert.inbox.messages())


# --- 4. replayed transactions --------------------------------------------------------------------


async def test_a_transaction_over_the_documented_bound_is_refused_whole(world: World) -> None:
    """docs/federation.md: at most 100 items whose layers total at most 1 MiB. Five items of
    about 220 KB each (about 1.1 MB, inside the HTTP body bound) are refused whole, and
    none of them is stored; the same five split in two transactions go through."""
    fed = world.fed
    bob = world.bob
    doc = await fed.document(B)
    size = 220_000
    items = []
    for _ in range(5):
        _, one = transaction(A, B, doc, bob.mailbox, bob.token, body=os.urandom(size))
        items += decode(one, Transaction).items
    assert MAX_TXN_BYTES < sum(len(i.layer) for i in items) < MAX_TXN_BYTES + 64 * 1024
    before = metric(await fed.metrics(B), "sealrelay_federation_received_total", origin=A)

    def send(chosen: list[TransactionItem]) -> SignedRequest:
        body = encode(Transaction(origin=A, destination=B, items=tuple(chosen)))
        return sign(fed.keys(A), A, B, SEND_PATH + secrets.token_hex(16), body)

    over = await put(fed.url(B), send(items))
    assert over.status_code == 413, over.text
    assert over.json()["code"] == "proto.too_large"
    after = metric(await fed.metrics(B), "sealrelay_federation_received_total", origin=A)
    assert after == before
    for half in (items[:3], items[3:]):
        answer = await put(fed.url(B), send(half))
        assert answer.status_code == 200, answer.text
        assert decode(answer.content, TransactionResult).results == (ITEM_OK,) * len(half)


async def test_a_replayed_transaction_is_refused(world: World) -> None:
    fed = world.fed
    bob = world.bob
    txn_id, body = transaction(A, B, await fed.document(B), bob.mailbox, bob.token)
    path = SEND_PATH + txn_id.hex()
    captured = sign(fed.keys(A), A, B, path, body)
    before = await fed.metrics(B)

    first = await put(fed.url(B), captured)
    assert first.status_code == 200, first.text
    result = decode(first.content, TransactionResult)
    assert result.txn_id == txn_id
    assert result.results == (ITEM_OK,)

    replay = await put(fed.url(B), captured)  # what C would send after capturing it
    assert replay.status_code == 401
    assert replay.json()["code"] == "fed.auth"

    old = int(time.time() * 1000) - 6 * 60_000  # outside the 5-minute window
    stale = await put(fed.url(B), sign(fed.keys(A), A, B, path, body, at_ms=old))
    assert stale.status_code == 401
    assert stale.json()["code"] == "fed.auth"

    # A's own retry (a new signature: the answer was lost) gets the first answer, and the
    # same item in another transaction is not stored twice either.
    retry = await put(fed.url(B), sign(fed.keys(A), A, B, path, body))
    assert retry.status_code == 200
    assert retry.content == first.content
    other = secrets.token_bytes(16)
    resent = await put(fed.url(B), sign(fed.keys(A), A, B, SEND_PATH + other.hex(), body))
    assert resent.status_code == 200
    assert decode(resent.content, TransactionResult).results == (ITEM_OK,)

    after = await fed.metrics(B)
    assert metric(after, ACCEPTED) == metric(before, ACCEPTED) + 1
    refused = metric(after, REFUSED, origin=A, code="fed.auth")
    assert refused == metric(before, REFUSED, origin=A, code="fed.auth") + 2

    # B remembers the nonce across a restart (it is in the store, not in memory).
    await trio.to_thread.run_sync(fed.nodes[B].restart)
    again = await put(fed.url(B), captured)
    assert again.status_code == 401
    assert again.json()["code"] == "fed.auth"
    restarted = await fed.metrics(B)
    assert metric(restarted, ACCEPTED) == 0
    assert metric(restarted, REFUSED, origin=A, code="fed.auth") == 1


# --- 5. a key document that breaks the pin ------------------------------------------------------


async def test_a_key_document_breaking_the_pin_is_refused(world: World) -> None:
    fed = world.fed
    bob = world.bob
    setup = fed.setups[D]
    now = int(time.time() * 1000)
    genuine = fed.keys(D)
    impostor = certify(generate(genuine.suite), D, load_root(fed.root_dir(C)), now, 30)
    endpoints = (setup.url,)
    forged_doc = impostor.key_document_bytes(D, endpoints, now, 86_400)
    # Also: the impostor's document carrying D's genuine root certification (of another key).
    real = decode(genuine.key_document_bytes(D, endpoints, now, 86_400), ServerKeyDocument)
    fake = decode(forged_doc, ServerKeyDocument)
    borrowed = encode(dataclasses.replace(fake, certifications=real.certifications))
    for doc in (forged_doc, borrowed):
        verify_document(doc, D, now)  # well-formed and self-signed: only the pin is wrong
    b_doc = await fed.document(B)

    async def claim(keys: ServerKeys) -> httpx.Response:
        txn_id, body = transaction(D, B, b_doc, bob.mailbox, bob.token)
        return await put(fed.url(B), sign(keys, D, B, SEND_PATH + txn_id.hex(), body))

    with DocumentServer(setup.port).running() as server:
        before = await fed.metrics(B)
        for served in (forged_doc, borrowed):
            server.document = served
            fetches = server.fetches
            answer = await claim(impostor)
            assert answer.status_code == 401, answer.text
            assert answer.json()["code"] == "fed.pin_mismatch"
            assert server.fetches > fetches, "B did not fetch D's document from its endpoint"
        refused = await fed.metrics(B)
        assert metric(refused, KEY_REFUSALS, domain=D, code="fed.pin_mismatch") == (
            metric(before, KEY_REFUSALS, domain=D, code="fed.pin_mismatch") + 2
        )
        assert metric(refused, ACCEPTED) == metric(before, ACCEPTED)
        lines = [json.loads(x) for x in fed.nodes[B].log_text().splitlines() if x.strip()]
        loud = [x for x in lines if x.get("domain") == D and x.get("code") == "fed.pin_mismatch"]
        assert loud, "B did not log the refused document"
        assert loud[-1]["level"] == "error"
        # Nor does B hand the forged document to its clients.
        reader = bob.load()
        async with reader.online():
            with pytest.raises(Refused) as refusal:
                await reader.domain_document(D)
        assert refusal.value.node_code == "fed.pin_mismatch"
        assert reader.keyring.document(D) is None
        refused = await fed.metrics(B)
        assert metric(refused, KEY_REFUSALS, domain=D, code="fed.pin_mismatch") == (
            metric(before, KEY_REFUSALS, domain=D, code="fed.pin_mismatch") + 3
        )

        # Control: D's genuine document is accepted, and so is a request signed by D.
        fresh = int(time.time() * 1000)
        server.document = genuine.key_document_bytes(D, endpoints, fresh, 86_400)
        answer = await claim(genuine)
        assert answer.status_code == 200, answer.text
        assert decode(answer.content, TransactionResult).results == (ITEM_OK,)
        accepted = await fed.metrics(B)
        assert metric(accepted, ACCEPTED) == metric(before, ACCEPTED) + 1
        assert metric(accepted, KEY_REFUSALS, domain=D) == metric(refused, KEY_REFUSALS, domain=D)


# --- 6. key rotation during traffic ---------------------------------------------------------------


async def test_key_rotation_during_traffic_loses_nothing(world: World) -> None:
    fed = world.fed
    node = fed.nodes[A]
    alice, bob = world.alice.load(), world.bob.load()
    old_key = fed.keys(A).sig_key_id
    sent: list[str] = []
    stop = trio.Event()

    async def keep_sending() -> None:
        while not stop.is_set():
            text = f"steady {len(sent)}"
            assert not (await alice.send(bob.device.address, text)).failed
            sent.append(text)
            await trio.sleep(0.03)

    async with alice.online(), bob.online():
        await converse(alice, bob)
        before = await fed.metrics(B)
        reloads = node.log_text().count("server keys reloaded")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_sending)
            await wait_until(lambda: len(sent) >= 20, 20, "traffic before the rotation")
            await trio.to_thread.run_sync(
                lambda: run_cli(
                    "keys",
                    "rotate",
                    "--data",
                    str(fed.setups[A].data_dir),
                    "--root",
                    str(fed.root_dir(A)),
                    "--domain",
                    A,
                )
            )
            at_rotation = len(sent)
            took = await wait_until(
                lambda: node.log_text().count("server keys reloaded") > reloads, 6, "the reload"
            )
            # Sends go on after the reload too, so some are signed with the new key (those
            # before it may all have been sent while the node still signed with the old).
            after_reload = len(sent) + 20
            await wait_until(
                lambda: len(sent) >= max(at_rotation + 40, after_reload), 20, "traffic after it"
            )
            stop.set()
        await wait_until(lambda: set(sent) <= set(texts(bob)), 30, "every steady message")
        after = await fed.metrics(B)

    received = texts(bob)
    duplicates = [t for t in sent if received.count(t) != 1]
    assert not duplicates, duplicates[:5]
    assert metric(after, ACCEPTED) - metric(before, ACCEPTED) == len(sent)
    assert took < 4.0, f"the node took {took:.1f} s to reload its keys"
    new_keys = fed.keys(A)
    assert new_keys.sig_key_id != old_key
    served = await fed.document(A)
    listed = {key.id for key in served.body.verify_keys}
    assert {old_key, new_keys.sig_key_id} <= listed  # the old key co-signs in its overlap
    assert len(served.signatures) == 2
    # B took A's requests signed by the new key without refusing one: it refreshed A's
    # document on the unknown key id, as its notary answer (asked by C) shows.
    assert metric(after, REFUSED, origin=A) == metric(before, REFUSED, origin=A)
    notary = await put(fed.url(B), sign(fed.keys(C), C, B, NOTARY + A, b"", method="GET"))
    assert notary.status_code == 200, notary.text
    seen_by_b = decode(decode(notary.content, NotaryAnswer).document, ServerKeyDocument)
    assert new_keys.sig_key_id in {key.id for key in seen_by_b.body.verify_keys}


# --- 7. clients trust other domains through their own agency's root ------------------------------


async def test_clients_trust_other_domains_only_through_their_home_root(world: World) -> None:
    fed = world.fed
    for person, domain in ((world.alice, A), (world.bob, B), (world.carol, C)):
        assert persist.load_home_roots(person.store) == (load_root(fed.root_dir(domain))[0],)
        # what `sealrelay client info` prints, to compare with the agency's fingerprint
        assert home_root_fingerprints(person.load()) == [fed.setups[domain].root_fingerprint]
    dave = await fed.enroll(C, "dave", world.base / "dave")
    statement_file = fed.setups[C].data_dir / PEER_ROOTS_FILE
    held = statement_file.read_bytes()
    statement_file.unlink()  # C's node now has no statement of C's root to serve
    try:
        client = dave.load()
        async with client.online():
            with pytest.raises(UntrustedDomain, match="serves no peer-roots statement"):
                await client.send(world.alice.address, "no anchor")
            assert client.keyring.document(A) is None
    finally:
        statement_file.write_bytes(held)
    # Control: with the statement back (the node reads it per request), dave reaches A.
    client, alice = dave.load(), world.alice.load()
    async with client.online(), alice.online():
        await converse(client, alice)
        document = await client.domain_document(A)
    assert {c.root_public for c in document.certifications} == {load_root(fed.root_dir(A))[0]}
