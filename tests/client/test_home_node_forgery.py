"""A malicious home node cannot make its own users believe that a message comes from
another agency's user (docs/security.md, "Your own node").

carol@bravo.test has never talked to alpha.test. Her node (``FakeNode``, speaking the real
frames) answers ``GetServerKeys(alpha.test)`` with a document for alpha.test that lists
bravo's own verify key, self-signed, and delivers an envelope with origin alpha.test whose
sealed sender, mallory@alpha.test, carries a certificate that bravo's key signed. The
devices and all crypto are real. The forged document comes bare, certified by a root the
node made up (with a statement of that root's, too), or wearing alpha's genuine
certification of alpha's own key. Each time carol's client must refuse the document
(``client.untrusted_domain``) and never show the message.

The control goes through the same path: alpha's genuine document, certified by alpha's
root, which bravo's offline root vouches for in its peer-roots statement, is accepted and
a message of a genuine alpha user opens.

These tests use only client APIs that predate the fix, so they fail on the client before
it (the forgery was shown as from mallory@alpha.test) rather than on an import.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing

from client import persist
from client.app import Client
from client.content import Content, pack
from client.errors import ClientError
from client.inbox import Inbox
from client.records import AccountInfo
from client.sealed import StaticKeyring
from client.serverkeys import PinnedKeyring
from client.session import Device
from client.store.memory import MemoryStore
from node.keys import ServerKeys
from node.rootkeys import certify
from tests.client.netfakes import FakeNode
from tests.client.pairs import DAY_MS, Clock
from tests.client.trustfakes import document, root, server_keys, signing_domain, statement
from wire import decode, encode
from wire.relay import Envelope
from wire.server import ServerKeyDocument

HOME = "bravo.test"
PEER = "alpha.test"
CLOCK = Clock()
NOW = int(CLOCK.now * 1000)


@dataclass(frozen=True)
class Keys:
    bravo: ServerKeys  # carol's home node's keys, certified by bravo's root
    alpha: ServerKeys  # alpha's genuine keys, certified by alpha's root
    statement: bytes  # bravo's root: bravo's clients may trust alpha's root for alpha

    def forgeries(self) -> dict[str, tuple[bytes, bytes]]:
        """What the node serves: (alpha's "document", the peer-roots statement)."""
        bare = document(self.bravo, PEER, NOW)
        made_up = root("made up by bravo's node")
        own_root = document(certify(self.bravo, PEER, made_up, NOW, 30), PEER, NOW)
        own_statement = statement(made_up, HOME, {PEER: made_up}, NOW)
        genuine = decode(document(self.alpha, PEER, NOW), ServerKeyDocument)
        forged = decode(bare, ServerKeyDocument)
        borrowed = encode(dataclasses.replace(forged, certifications=genuine.certifications))
        return {
            "bare": (bare, self.statement),
            "own-root": (own_root, self.statement),
            "own-root-and-statement": (own_root, own_statement),
            "borrowed-certification": (borrowed, self.statement),
        }


@pytest.fixture(scope="module")
def keys() -> Keys:
    alpha_root, bravo_root = root("alpha"), root("bravo")
    return Keys(
        bravo=server_keys(HOME, bravo_root, NOW),
        alpha=server_keys(PEER, alpha_root, NOW),
        statement=statement(bravo_root, HOME, {PEER: alpha_root}, NOW),
    )


class Carol:
    """carol@bravo.test's enrolled state, her node, and senders claiming alpha.test."""

    def __init__(self, keys: Keys, tmp_path: Path) -> None:
        home_doc = document(keys.bravo, HOME, NOW)
        keyring = PinnedKeyring()
        keyring.pin(decode(home_doc, ServerKeyDocument))
        self.device = signing_domain(HOME, keys.bravo, CLOCK).device("carol", keyring)
        self.store = MemoryStore()
        persist.save_device(self.store, self.device)
        info = AccountInfo("http://node.invalid", home_doc, b"\x01" * 16, b"\x02" * 16)
        persist.save_account_info(self.store, info)
        self.node = FakeNode(server=HOME, peer_roots=keys.statement)
        self.tmp_path = tmp_path

    def sender(self, name: str, signer: ServerKeys) -> Device:
        """``name@alpha.test`` whose sender certificate ``signer`` issued."""
        domain = signing_domain(PEER, signer, CLOCK)
        device = domain.device(name, StaticKeyring({}))
        device.start_session(self.device.pool.bundle(self.device.address, 1))
        return device

    def envelope(self, sender: Device, text: str) -> Envelope:
        content = Content(text, 1, b"\x03" * 16, b"\x04" * 16, None, ())
        body = sender.encrypt(self.device.address, 1, pack(content))
        return Envelope(os.urandom(16), NOW, NOW + DAY_MS, PEER, None, body)

    def client(self) -> Client:
        return Client.load(
            self.store, save_dir=self.tmp_path, clock=CLOCK, connector=self.node.connector
        )

    async def receive(self, document: bytes, envelope: Envelope) -> tuple[Client, object]:
        """Deliver ``envelope`` while the node answers ``document`` for alpha.test; the
        client, and what asking it for alpha's document gave (the document, or the
        error)."""
        self.node.documents[PEER] = document
        self.node.backlog = [envelope]
        client = self.client()
        async with client.online():
            with trio.fail_after(30):
                await client.drained.wait()
                await trio.testing.wait_all_tasks_blocked()  # keys fetched, quarantine tried
            try:
                answer: object = await client.domain_document(PEER)
            except ClientError as exc:
                answer = exc
        return client, answer


def texts(store: MemoryStore) -> list[str]:
    return [m.text for m in Inbox(store).messages()]


def senders(store: MemoryStore) -> list[str]:
    return [m.sender for m in Inbox(store).messages()]


@pytest.mark.parametrize(
    "variant", ["bare", "own-root", "own-root-and-statement", "borrowed-certification"]
)
async def test_the_home_node_cannot_speak_for_another_domain(
    keys: Keys, tmp_path: Path, variant: str
) -> None:
    carol = Carol(keys, tmp_path)
    forged_doc, served_statement = keys.forgeries()[variant]
    carol.node.peer_roots = served_statement
    mallory = carol.sender("mallory", keys.bravo)  # the node signs "mallory@alpha.test"
    client, answer = await carol.receive(forged_doc, carol.envelope(mallory, "from alpha?"))
    assert texts(carol.store) == []
    assert not any(s.endswith("@" + PEER) for s in senders(carol.store))
    assert isinstance(answer, ClientError), "the client accepted the node's document"
    assert answer.code == "client.untrusted_domain"
    assert client.keyring.document(PEER) is None
    assert PEER not in persist.domain_documents(carol.store)
    # The envelope waits in the quarantine (until it expires); it is never shown.
    assert len(persist.quarantined(carol.store)) == 1


async def test_control_alphas_genuine_document_opens_a_genuine_message(
    keys: Keys, tmp_path: Path
) -> None:
    carol = Carol(keys, tmp_path)
    alice = carol.sender("alice", keys.alpha)  # certified by alpha's own key
    genuine = document(keys.alpha, PEER, NOW)
    _, answer = await carol.receive(genuine, carol.envelope(alice, "from alpha"))
    assert texts(carol.store) == ["from alpha"]
    assert senders(carol.store) == [f"alice@{PEER}"]
    assert isinstance(answer, ServerKeyDocument)
    assert answer.body.verify_keys[0].public == keys.alpha.sig_public
    assert persist.quarantined(carol.store) == []


async def test_a_forged_document_stored_before_the_fix_is_not_trusted_after_it(
    keys: Keys, tmp_path: Path
) -> None:
    """A client of an earlier release may have stored the node's forgery: after the
    upgrade it is judged again, so the forged sender's next message does not open."""
    carol = Carol(keys, tmp_path)
    forged = keys.forgeries()["bare"][0]
    persist.save_domain_document(carol.store, PEER, forged)
    mallory = carol.sender("mallory", keys.bravo)
    assert carol.client().keyring.document(PEER) is None
    _, answer = await carol.receive(forged, carol.envelope(mallory, "again"))
    assert texts(carol.store) == []
    assert isinstance(answer, ClientError)
