"""The sealed roster's one upload (``client.meetings.net``) and its way in
(``client.receive``): one shared upload for every device of the participants named, home
domain as ``SendShared`` and another domain as a routing layer, pairwise only for an address
whose devices are unknown; on receipt, handed to the running meeting, never to the inbox."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import trio
import trio.testing

from client.content import MeetingNote, unpack_pairwise
from client.errors import ClientError
from client.meetings import sign_roster
from client.meetings.events import SharedNote
from client.meetings.group import GroupMeeting, Me
from client.meetings.net import MeetingInbox, MeetingNet
from client.meetings.roster import parse_sealed, seal_roster, sealed_body
from client.outbox import AnyItem, OutboxShared
from client.records import Contact
from tests.client.meetings.kit import MID, T0, Draws, Person, verify
from tests.client.test_net_receive import Setup
from wire.meeting import EpochCause, RosterBody, SealedRoster
from wire.relay import Envelope
from wire.server import ServerKeyDocument

LEADER, ALICE = Person("leader"), Person("alice")
HOME = "a.example"


def _sealed() -> SealedRoster:
    body = RosterBody(MID, 1, 0, EpochCause.START, T0, (LEADER.entry(0), ALICE.entry(1)))
    return seal_roster(sign_roster(body, LEADER.key, LEADER), bytes(32), 1, bytes(12))


class FakeSender:
    """``SharedSender`` with known contacts for some addresses, and a record of what was
    written or composed."""

    home = HOME

    def __init__(self, known: dict[str, dict[int, Contact]]) -> None:
        self.known = known
        self.items: list[AnyItem] = []
        self.composed: list[tuple[str, bytes]] = []
        self.woken = 0

    async def compose(self, to: str, plaintext: bytes, ttl: int) -> list[bytes]:
        self.composed.append((to, plaintext))
        return [os.urandom(16)]

    def wake(self) -> None:
        self.woken += 1

    async def wait(self, eids: Iterable[bytes]) -> dict[bytes, object]:
        return {}

    async def targets(self, to: str) -> dict[int, Contact]:
        if to not in self.known:
            raise ClientError("no devices known")
        return self.known[to]

    async def documents(self, domains: Iterable[str]) -> dict[str, ServerKeyDocument]:
        assert set(domains) == {HOME}  # no other domain here
        return {}

    def write_items(self, make: Callable[[], Iterable[AnyItem]]) -> list[bytes]:
        self.items += list(make())
        return [item.eid for item in self.items]


def _net(sender: FakeSender) -> MeetingNet:
    me = Me(f"leader@{HOME}", 1, LEADER.key, LEADER, verify)
    core = GroupMeeting(bytes(16), me, lambda: [], Draws())
    return MeetingNet(
        core, MeetingInbox(), sender, reply=lambda: (None, None), clock=lambda: T0 / 1000,
        on_event=lambda _: None, shared=(sender, _Entropy()),  # type: ignore[arg-type]
    )  # fmt: skip


class _Entropy:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


async def test_one_upload_reaches_every_device_named() -> None:
    bob, cat = f"bob@{HOME}", f"cat@{HOME}"
    sender = FakeSender(
        {
            bob: {1: Contact(b"\x01" * 16, b"\x0a" * 16), 2: Contact(b"\x02" * 16, None)},
            cat: {1: Contact(b"\x03" * 16, b"\x0b" * 16)},
        }
    )
    sealed = _sealed()
    await _net(sender)._upload(SharedNote((bob, cat), sealed))
    assert sender.composed == []
    (item,) = sender.items
    assert isinstance(item, OutboxShared)
    assert item.domain == ""  # the home domain's SendShared
    assert {r.mailbox for r in item.recipients} == {b"\x01" * 16, b"\x02" * 16, b"\x03" * 16}
    assert parse_sealed(item.body) == sealed
    assert item.body == sealed_body(sealed)
    assert sender.woken == 1


async def test_an_address_without_known_devices_gets_it_pairwise() -> None:
    bob, dan = f"bob@{HOME}", f"dan@{HOME}"
    sender = FakeSender({bob: {1: Contact(b"\x01" * 16, b"\x0a" * 16)}})
    sealed = _sealed()
    await _net(sender)._upload(SharedNote((bob, dan), sealed))
    assert len(sender.items) == 1
    ((to, plaintext),) = sender.composed
    assert to == dan
    note = unpack_pairwise(plaintext)
    assert isinstance(note, MeetingNote)
    assert note.signal == sealed


async def test_a_sealed_roster_envelope_goes_to_the_meeting(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    sealed = _sealed()
    expires = int(setup.domain.clock.now * 1000) + 86_400_000
    env = Envelope(os.urandom(16), 1, expires, "example.org", None, sealed_body(sealed))
    setup.node.backlog = [env]
    client = setup.client()
    inbox = MeetingInbox()
    client.receiver.meetings = inbox
    async with client.online():
        with trio.fail_after(30):
            await client.drained.wait()
            await trio.testing.wait_all_tasks_blocked()
    assert list(inbox.shared) == [sealed]
    assert env.eid in setup.node.acked
    assert client.receiver.quarantine_count == 0
