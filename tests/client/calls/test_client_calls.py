"""Call signalling through ``Client`` (client/receive.py -> client/calls/callnet.py -> the
send path): a received offer never reaches the inbox, its reply details are kept, and the
device rings at once with a ``CallRinging`` sealed to the caller like any message."""

from __future__ import annotations

import os
from pathlib import Path

import trio
import trio.testing

from client import persist
from client.calls.signal_events import Ringing, Role
from client.content import CallNote, pack_call, unpack_call
from client.inbox import Inbox
from tests.client.test_net_receive import DAY_MS, Setup
from wire.calls import CallOffer, CallRinging
from wire.relay import Envelope

TOKEN, MAILBOX = b"\x03" * 16, b"\x04" * 16


def _offer_envelope(setup: Setup) -> tuple[Envelope, CallOffer]:
    now = int(setup.domain.clock.now * 1000)
    offer = CallOffer(os.urandom(16), os.urandom(32), False, now, now + 45_000)
    body = setup.alice.encrypt(setup.bob.address, 1, pack_call(CallNote(offer, TOKEN, MAILBOX)))
    return Envelope(os.urandom(16), 1, now + DAY_MS, "example.org", None, body), offer


async def test_a_received_offer_rings_and_answers_ringing(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    envelope, offer = _offer_envelope(setup)
    setup.node.backlog = [envelope]
    client = setup.client()
    events = client.calls.subscribe()
    async with client.online():
        with trio.fail_after(30):
            ringing = await events.receive()
            assert await client.calls.flush() == {}
            await trio.testing.wait_all_tasks_blocked()
    assert isinstance(ringing, Ringing)
    assert (ringing.role, ringing.peer, ringing.call_id) == (
        Role.CALLEE,
        setup.alice.address,
        offer.call_id,
    )
    assert list(Inbox(setup.store).messages()) == []
    contact = persist.load_contact(setup.store, setup.alice.address, 1)
    assert contact is not None
    assert (contact.mailbox, contact.delivery_token) == (MAILBOX, TOKEN)
    (sent,) = [f for f in setup.node.received if hasattr(f, "token")]
    assert (sent.mailbox, sent.token) == (MAILBOX, TOKEN)
    note = unpack_call(setup.alice.decrypt(sent.body).plaintext)
    assert note.signal == CallRinging(offer.call_id)
