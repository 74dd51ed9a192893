"""client.groupnet: the transport wrap of group messages and the pairwise dispatch of group
controls (welcomes, changes, distributions, transport keys), on in-memory stores."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from client.content import Content, GroupKey, GroupNote, pack, unpack_payload
from client.errors import BadContent
from client.groupnet import (
    GroupBook,
    GroupEnvelope,
    GroupPending,
    NetGroup,
    parse,
    unwrap,
    wrap,
)
from client.groups import Group, GroupControl, member_of, pack_control
from client.groups.changes import make_change
from client.session import Device
from client.store.memory import MemoryStore
from suites import get_suite_by_id
from suites.labels import GROUP_TRANSPORT_AAD
from suites.padding import BUCKETS, pad
from tests.client.pairs import DeterministicEntropy, Domain, keyring_for
from wire import encode
from wire.group import GroupMember, OpAdd, OpRemove

SUITE = "xwing"


@dataclass
class Member:
    device: Device
    store: MemoryStore
    book: GroupBook

    @property
    def address(self) -> str:
        return self.device.address

    @property
    def sig(self) -> bytes:
        return self.device.identity.public.sig

    def member(self) -> GroupMember:
        return member_of(self.device.suite, self.address, {1: self.sig})

    def take(self, sender: Member, payload: GroupControl | GroupNote) -> str | None:
        return self.book.receive(sender.address, 1, payload, sender.sig).refused


@pytest.fixture(scope="module")
def devices() -> dict[str, Device]:
    domain = Domain.create(SUITE, "example.org")
    keyring = keyring_for(domain)
    entropy = DeterministicEntropy(b"groupnet")
    return {n: domain.device(n, keyring, entropy) for n in ("alice", "bob", "carol", "dave")}


@pytest.fixture
def people(devices: dict[str, Device]) -> dict[str, Member]:
    found = {}
    for name, device in devices.items():
        store = MemoryStore()
        found[name] = Member(device, store, GroupBook(store, device, DeterministicEntropy(b"x")))
    return found


def note(control: bytes, group_id: bytes, key: GroupKey | None = None) -> GroupNote:
    return GroupNote(
        control=unpack_control_bytes(pack_control(group_id, control)),
        key=key,
        reply_token=None,
        reply_mailbox=None,
    )


def unpack_control_bytes(data: bytes) -> GroupControl:
    payload = unpack_payload(data)
    assert isinstance(payload, GroupControl)
    return payload


def founded(people: dict[str, Member], *names: str) -> tuple[NetGroup, GroupKey]:
    """Alice's new group with ``names``; each of them joined from her welcome note."""
    alice = people["alice"]
    group, _ = Group.create(
        alice.device.identity,
        alice.address,
        1,
        "team",
        tuple(people[n].member() for n in names),
        DeterministicEntropy(b"create"),
    )
    ng = NetGroup(group.state.group_id, group)
    key = alice.book.new_key(ng)
    alice.book.save(ng)
    welcome = note(group.welcome(), ng.group_id, key)
    for name in names:
        assert people[name].take(alice, welcome) is None
    return ng, key


def send(book: GroupBook, ng: NetGroup, text: str) -> bytes:
    assert ng.group is not None
    content = Content(
        text=text, sent=1, reply_token=None, reply_mailbox=None, expire=None, attachments=()
    )
    inner = ng.group.encrypt(pack(content))
    return wrap(ng.group.state.suite.suite_id, book.sending_key(ng), inner, os.urandom(12))


def distribute(people: dict[str, Member], sender: str, *to: str) -> None:
    ng = people[sender].book.all()[0]
    assert ng.group is not None
    dist = note(ng.group.distribution(), ng.group_id)
    for name in to:
        assert people[name].take(people[sender], dist) is None


# --- the wrap ---------------------------------------------------------------------------------


def test_wrap_hides_the_message_and_pads_to_a_bucket() -> None:
    key, inner = os.urandom(32), b"\x93group-id-and-chain" + os.urandom(700)
    body = wrap(2, key, inner, os.urandom(12))
    assert len(body) in BUCKETS
    assert b"group-id-and-chain" not in body
    envelope = parse(body)
    assert envelope is not None
    assert unwrap(2, key, envelope) == inner
    assert unwrap(2, os.urandom(32), envelope) is None


def test_wrap_binds_its_label() -> None:
    """The same key, nonce and message sealed without the transport label never unwraps:
    another AEAD output under a transport key cannot pass for a group message."""
    key, nonce, inner = os.urandom(32), os.urandom(12), os.urandom(200)
    bare = GroupEnvelope(nonce=nonce, c=get_suite_by_id(2).aead.seal(key, nonce, inner, b""))
    assert unwrap(2, key, bare) is None
    labelled = GroupEnvelope(
        nonce=nonce, c=get_suite_by_id(2).aead.seal(key, nonce, inner, GROUP_TRANSPORT_AAD)
    )
    assert unwrap(2, key, labelled) == inner


def test_parse_refuses_what_is_not_a_group_envelope() -> None:
    assert parse(os.urandom(1024)) is None
    assert parse(pad(os.urandom(300))) is None
    assert parse(b"") is None


def test_unpack_payload_tells_content_from_group_control(people: dict[str, Member]) -> None:
    content = Content(
        text="hi", sent=1, reply_token=None, reply_mailbox=None, expire=None, attachments=()
    )
    assert unpack_payload(pack(content)) == content
    ng, _ = founded(people, "bob")
    assert ng.group is not None
    control = pack_control(ng.group_id, ng.group.welcome())
    assert isinstance(unpack_payload(control), GroupControl)
    with pytest.raises(BadContent):
        unpack_payload(os.urandom(40))


# --- the dispatch -----------------------------------------------------------------------------


def test_a_welcome_joins_and_the_group_survives_a_reload(people: dict[str, Member]) -> None:
    ng, key = founded(people, "bob", "carol")
    bob = people["bob"]
    joined = bob.book.get(ng.group_id)
    assert joined is not None
    assert joined.group is not None
    assert joined.group.state.hash == ng.group.state.hash  # type: ignore[union-attr]
    assert bob.book.sending_key(joined) == key.key
    reloaded = GroupBook(bob.store, bob.device, DeterministicEntropy(b"y")).get(ng.group_id)
    assert reloaded is not None
    assert reloaded.group is not None
    assert reloaded.group.to_bytes() == joined.group.to_bytes()
    assert reloaded.keys == joined.keys


def test_a_welcome_whose_sender_is_not_that_member_is_refused(people: dict[str, Member]) -> None:
    alice, carol, dave = people["alice"], people["carol"], people["dave"]
    group, _ = Group.create(
        alice.device.identity, alice.address, 1, "t", (dave.member(),), DeterministicEntropy(b"w")
    )
    welcome = note(group.welcome(), group.state.group_id)
    # carol relays alice's welcome under her own pairwise identity: refused
    code = dave.book.receive(alice.address, 1, welcome, carol.sig).refused
    assert code == "group.welcome_not_from_member"
    assert dave.book.get(group.state.group_id) is None
    assert dave.take(carol, welcome) == "group.welcome_not_from_member"


def test_a_key_not_from_the_signer_of_its_state_is_refused(people: dict[str, Member]) -> None:
    ng, key = founded(people, "bob", "carol")
    forged = GroupKey(head=key.head, key=os.urandom(32))
    bob = people["bob"]
    carol = people["carol"]
    assert ng.group is not None
    control = note(ng.group.welcome(), ng.group_id, forged)
    carol.take(bob, control)
    assert (ng.group_id, "group.key_not_from_signer") in carol.book.refused
    joined = carol.book.get(ng.group_id)
    assert joined is not None
    assert carol.book.sending_key(joined) == key.key


def test_group_message_opens_for_members_only_after_a_removal(people: dict[str, Member]) -> None:
    ng, _ = founded(people, "bob", "carol")
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    distribute(people, "alice", "bob", "carol")
    envelope = parse(send(alice.book, ng, "before"))
    assert envelope is not None
    for member in (bob, carol):
        _, message = member.book.open(envelope)
        assert message.sender == alice.address
    assert ng.group is not None
    removal, _ = ng.group.propose(OpRemove(address=carol.address))
    key = alice.book.new_key(ng)
    assert bob.take(alice, note(removal, ng.group_id, key)) is None
    assert carol.take(alice, note(removal, ng.group_id)) is None  # told, without the key
    ng.group.rotate(DeterministicEntropy(b"rotate"))
    distribute(people, "alice", "bob")
    after = parse(send(alice.book, ng, "after"))
    assert after is not None
    assert bob.book.open(after)[1].sender == alice.address
    with pytest.raises(GroupPending):
        carol.book.open(after)
    # carol cannot send with a key from before her removal either: her chain ends there
    carol_ng = carol.book.get(ng.group_id)
    assert carol_ng is not None
    assert carol_ng.group is not None
    assert not carol_ng.group.is_member


def test_a_distribution_before_the_add_waits_for_it(people: dict[str, Member]) -> None:
    ng, _ = founded(people, "bob")
    alice, bob, dave = people["alice"], people["bob"], people["dave"]
    assert ng.group is not None
    add, _ = ng.group.propose(OpAdd(member=dave.member()))
    key = alice.book.new_key(ng)
    assert dave.take(alice, note(ng.group.welcome(), ng.group_id, key)) is None
    distribute(people, "dave", "bob")  # bob has not seen the add yet: kept
    dave_ng = dave.book.get(ng.group_id)
    assert dave_ng is not None
    message = parse(send(dave.book, dave_ng, "hi from dave"))
    assert message is not None
    with pytest.raises(GroupPending):
        bob.book.open(message)
    assert bob.take(alice, note(add, ng.group_id, key)) is None
    _, opened = bob.book.open(message)
    assert opened.sender == dave.address


def test_a_non_admins_change_is_refused_and_changes_nothing(people: dict[str, Member]) -> None:
    ng, _ = founded(people, "bob", "carol")
    bob, carol = people["bob"], people["carol"]
    bob_ng = bob.book.get(ng.group_id)
    assert bob_ng is not None
    assert bob_ng.group is not None
    forged = make_change(
        bob_ng.group.state.view,
        bob.device.identity,
        bob.address,
        1,
        OpRemove(address="alice@example.org"),
    )
    before = carol.book.get(ng.group_id)
    assert before is not None
    assert before.group is not None
    state = before.group.state.hash
    assert carol.take(bob, note(encode(forged), ng.group_id)) == "group.not_admin"
    after = carol.book.get(ng.group_id)
    assert after is not None
    assert after.group is not None
    assert after.group.state.hash == state
