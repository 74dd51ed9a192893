"""The probe's attack on a real node process: a home node whose operator turned hostile
cannot make its users believe a message comes from another agency's user.

bravo (B) runs as ``sealrelay node serve``; delta (D) has keys, a root and a peer-roots
entry in bravo's statement, but no node. bravo's operator reconfigures the node to pin its
own server key as delta's and serves, where delta's endpoint is, a document for delta that
lists bravo's own key, self-signed. The node then takes a transaction "from delta" that it
signed itself: an envelope for carol@bravo whose sealed sender, mallory@delta, carries a
certificate bravo's key signed. It relays the forged document to carol's client on
``GetServerKeys``. Only the offline root's statement (which lists delta's genuine root)
stands in the way: carol's client refuses delta's document with
``client.untrusted_domain`` and never shows the message. On the client before the fix,
this test fails: the forgery was shown as from mallory@delta.test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import trio

from client import persist
from client.app import Client
from client.content import Content, pack
from client.entropy import SYSTEM_ENTROPY
from client.errors import ClientError
from client.identity import Identity, PrekeyPool
from client.sealed import StaticKeyring
from client.session import Device
from client.store.base import NS_SEEN
from node.fed.outbound import SEND_PATH
from node.keys import ServerKeys
from suites import rootsig
from tests.integration.fedharness import (
    DocumentServer,
    LocalFederation,
    Person,
    put,
    sign,
    texts,
    transaction,
    wait_until,
)
from wire import decode
from wire.federation import ITEM_OK, Transaction, TransactionResult

B: Final = "bravo.test"
D: Final = "delta.test"


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[LocalFederation]:
    """bravo's node, its operator pinning bravo's own key as delta's."""
    fed = LocalFederation(tmp_path / "fed", [B, D], suite="xwing")
    config = fed.setups[B].config
    own_key = rootsig.fingerprint(fed.keys(B).sig_public)
    text = config.read_text()
    assert fed.setups[D].root_fingerprint in text
    config.write_text(text.replace(fed.setups[D].root_fingerprint, own_key))
    try:
        fed.start(B)
        yield fed
    finally:
        fed.close()


def _mallory(keys: ServerKeys, carol: Client) -> Device:
    """mallory@delta.test, certified by bravo's key, with a session to carol's device."""
    identity = Identity.generate(keys.suite, SYSTEM_ENTROPY)
    address = f"mallory@{D}"
    now = int(time.time() * 1000)
    device = Device(
        address=address,
        device_id=1,
        identity=identity,
        pool=PrekeyPool.create(identity, SYSTEM_ENTROPY),
        keyring=StaticKeyring({}),
        certificate=keys.issue_certificate(address, 1, identity.public, now, 86_400),
        clock=time.time,
    )
    own = carol.device
    device.start_session(own.pool.bundle(own.address, own.device_id))
    return device


async def _deliver_forgery(fed: LocalFederation, carol: Person, body: bytes) -> bytes:
    """bravo's node takes a transaction "from delta" signed with its own key; the eid."""
    keys = fed.keys(B)
    txn_id, txn = transaction(D, B, await fed.document(B), carol.mailbox, carol.token, body=body)
    answer = await put(fed.url(B), sign(keys, D, B, SEND_PATH + txn_id.hex(), txn))
    assert answer.status_code == 200, answer.text
    assert decode(answer.content, TransactionResult).results == (ITEM_OK,)
    return decode(txn, Transaction).items[0].eid


async def test_a_hostile_home_node_cannot_pass_off_its_message_as_another_agencys(
    hostile: LocalFederation, tmp_path: Path
) -> None:
    fed = hostile
    person = await fed.enroll(B, "carol", tmp_path / "carol")
    carol = person.load()
    mallory = _mallory(fed.keys(B), carol)
    content = Content("from delta?", int(time.time() * 1000), b"\x03" * 16, b"\x04" * 16, None, ())
    body = mallory.encrypt(carol.device.address, carol.device.device_id, pack(content))
    forged_doc = fed.keys(B).key_document_bytes(D, (fed.url(D),), int(time.time() * 1000), 86_400)
    with DocumentServer(fed.setups[D].port).running() as server:
        server.document = forged_doc
        eid = await _deliver_forgery(fed, person, body)
        async with carol.online():
            await wait_until(lambda: person.store.get(NS_SEEN, eid) is not None, 20, "delivery")
            await wait_until(lambda: server.fetches >= 1, 20, "bravo fetching the forgery")
            await trio.sleep(1.0)  # carol's client judged what its node relayed
            carol.retry_quarantined()
            shown = [(m.sender, m.text) for m in carol.inbox.messages()]
            assert shown == [], "the forgery was shown"
            with pytest.raises(ClientError) as refused:
                await carol.domain_document(D)
    assert refused.value.code == "client.untrusted_domain"
    assert texts(carol) == []
    assert carol.keyring.document(D) is None
    assert D not in persist.domain_documents(person.store)
    assert [env.eid for env in persist.quarantined(person.store)] == [eid]
