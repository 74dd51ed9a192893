# ruff: noqa: F811  (the fixtures of test_groupnet are imported by name)
"""client.groupnet group tokens (docs/groups.md section 9): who may tell whom a token, what
an admin's publications carry, rotation on removal, the record, and what a send presents."""

from __future__ import annotations

import os

from client.groupnet import GroupBook, NetGroup, tokens
from client.groupnet.transport import GroupNetRecord, GroupNetRecordV1, GroupTokenState
from client.records import Contact
from client.sendpath import PlannedEnvelope, SendPath
from tests.client.pairs import DeterministicEntropy
from tests.client.test_groupnet import Member, devices, founded, note, people  # noqa: F401
from wire import decode, encode
from wire.group import GroupTokens, MemberToken, OpRemove

ALICE = "alice@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"
DAVE = "dave@example.org"


def entry(address: str, serial: int = 1, token: bytes | None = None) -> MemberToken:
    return MemberToken(
        address=address,
        device=1,
        mailbox=address.encode()[:16].ljust(16, b"-"),
        token=token or os.urandom(16),
        serial=serial,
    )


def joined(people: dict[str, Member], name: str, ng: NetGroup) -> NetGroup:
    found = people[name].book.get(ng.group_id)
    assert found is not None
    return found


def report(
    people: dict[str, Member], sender: str, to: str, gid: bytes, *entries: MemberToken
) -> bool:
    payload = GroupTokens(group=gid, tokens=entries)
    s = people[sender]
    return people[to].book.receive_tokens(s.address, 1, payload, s.sig)


def test_a_member_reports_only_its_own_token_and_an_admin_publishes_any(
    people: dict[str, Member],
) -> None:
    ng, _ = founded(people, "bob", "carol")
    gid = ng.group_id
    mine, forged = entry(BOB), entry(CAROL)
    assert report(people, "bob", "alice", gid, mine, forged)
    held = people["alice"].book.get(gid)
    assert held is not None
    assert held.tokens.members[(BOB, 1)] == mine
    assert (CAROL, 1) not in held.tokens.members  # bob may not speak for carol
    # an admin's publication is taken for every member device, not for strangers
    assert report(people, "alice", "carol", gid, mine, entry(DAVE))
    carol = joined(people, "carol", ng)
    assert carol.tokens.members[(BOB, 1)] == mine
    assert (DAVE, 1) not in carol.tokens.members
    # a lower or equal serial never replaces a held token; a higher one does
    assert not report(people, "alice", "carol", gid, entry(BOB, 1))
    newer = entry(BOB, 2)
    assert report(people, "alice", "carol", gid, newer)
    assert carol.tokens.members[(BOB, 1)] == newer
    assert people["carol"].book.member_token(BOB, 1) == newer.token


def test_tokens_from_a_device_that_is_not_its_pairwise_identity_are_refused(
    people: dict[str, Member],
) -> None:
    ng, _ = founded(people, "bob")
    payload = GroupTokens(group=ng.group_id, tokens=(entry(BOB),))
    dave = people["dave"]  # claims to be bob, with its own identity key
    assert not people["alice"].book.receive_tokens(BOB, 1, payload, dave.sig)
    assert (ng.group_id, "group.tokens_not_from_member") in people["alice"].book.refused


def test_publications_carry_what_each_member_device_has_not_had(
    people: dict[str, Member],
) -> None:
    ng, _ = founded(people, "bob", "carol", "dave")
    alice = (ALICE, 1)
    tokens.draw(ng.tokens, DeterministicEntropy(b"a"), alice, b"a" * 16)
    b, c, d = entry(BOB), entry(CAROL), entry(DAVE)
    tokens.merge(ng, (BOB, 1), False, (b,), alice)
    tokens.merge(ng, (CAROL, 1), False, (c,), alice)
    assert tokens.unpublished(ng)
    assert not tokens.complete(ng)
    first = dict(tokens.publication(ng, alice))
    assert set(first) == {(BOB, 1), (CAROL, 1)}  # dave cannot be reached without a token
    assert {e.address for e in first[(BOB, 1)].tokens} == {ALICE, BOB, CAROL}
    assert not tokens.unpublished(ng)
    tokens.merge(ng, (DAVE, 1), False, (d,), alice)
    assert tokens.complete(ng)
    second = dict(tokens.publication(ng, alice))
    assert [e.address for e in second[(BOB, 1)].tokens] == [DAVE]  # only what is new
    assert {e.address for e in second[(DAVE, 1)].tokens} == {ALICE, BOB, CAROL, DAVE}


def test_a_removal_makes_a_new_token_due_and_keeps_the_old_one_until_published(
    people: dict[str, Member],
) -> None:
    ng, _ = founded(people, "bob", "carol")
    bob = joined(people, "bob", ng)
    me = (BOB, 1)
    tokens.draw(bob.tokens, DeterministicEntropy(b"b"), me, b"b" * 16)
    bob.tokens.registered = True
    first = bob.tokens.token
    assert report(people, "alice", "bob", ng.group_id, entry(CAROL))
    assert ng.group is not None
    removal, _ = ng.group.propose(OpRemove(address=CAROL))
    assert people["bob"].take(people["alice"], note(removal, ng.group_id)) is None
    assert bob.tokens.rotate
    assert (CAROL, 1) not in bob.tokens.members  # the departed member's token is forgotten
    tokens.draw(bob.tokens, DeterministicEntropy(b"c"), me, b"b" * 16)
    assert bob.tokens.revoke == [first]
    assert bob.tokens.serial == 2
    assert not bob.tokens.registered
    bob.tokens.registered = True
    new = bob.tokens.members[me]
    assert not bob.tokens.confirmed
    # the admin's publication carrying the new token lets the old one go
    assert report(people, "alice", "bob", ng.group_id, new)
    assert bob.tokens.confirmed


def test_the_record_keeps_the_tokens_and_an_old_record_still_reads(
    people: dict[str, Member],
) -> None:
    ng, _ = founded(people, "bob")
    alice = people["alice"]
    tokens.draw(ng.tokens, DeterministicEntropy(b"a"), (ALICE, 1), b"a" * 16)
    tokens.merge(ng, (BOB, 1), False, (entry(BOB),), (ALICE, 1))
    tokens.publication(ng, (ALICE, 1))
    alice.book.save(ng)
    fresh = GroupBook(alice.store, alice.device, DeterministicEntropy(b"y"))
    back = fresh.get(ng.group_id)
    assert back is not None
    assert back.tokens == ng.tokens
    raw = alice.store.get("groups", ng.group_id)
    assert raw is not None
    rec = decode(raw, GroupNetRecord)
    old = GroupNetRecordV1(rec.group_id, rec.group, rec.keys, rec.pending, rec.distributed)
    alice.store.put("groups", ng.group_id, encode(old))
    older = GroupBook(alice.store, alice.device, DeterministicEntropy(b"z")).get(ng.group_id)
    assert older is not None
    assert older.tokens == GroupTokenState()


def test_an_envelope_to_a_group_member_presents_its_group_token() -> None:
    token, account = os.urandom(16), os.urandom(16)
    path = SendPath.__new__(SendPath)
    path._group_token = lambda a, d: token if a == BOB else None
    planned = PlannedEnvelope(BOB, 1, Contact(b"m" * 16, account), b"x", "")
    assert path._with_group_token(planned).contact.delivery_token == token
    other = PlannedEnvelope(CAROL, 1, Contact(b"m" * 16, None), b"x", "")
    assert path._with_group_token(other) == other
