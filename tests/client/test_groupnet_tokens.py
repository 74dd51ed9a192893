# ruff: noqa: F811  (the fixtures of test_groupnet are imported by name)
"""client.groupnet group tokens (docs/groups.md section 9): who may tell whom a token, what
an admin's publications carry, rotation on removal, the record, and what a send presents."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from client.content import unpack_payload
from client.groupnet import GroupBook, NetGroup, tokens
from client.groupnet.tokenflow import TokenFlow
from client.groupnet.transport import GroupNetRecord, GroupNetRecordV1, GroupTokenState
from client.records import Contact
from client.sendpath import Pairwise, PlannedEnvelope, SendPath
from suites.tokens import delivery_token_verifier
from tests.client.pairs import DeterministicEntropy
from tests.client.test_groupnet import Member, devices, founded, note, people  # noqa: F401
from wire import decode, encode
from wire.group import GroupTokens, MemberToken, OpRemove
from wire.relay import Ok, SetGroupToken

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
    # a member's own new report (a rotation) gets it everything again, the others the news
    tokens.merge(ng, (CAROL, 1), False, (entry(CAROL, 2),), alice)
    third = dict(tokens.publication(ng, alice))
    assert {e.address for e in third[(CAROL, 1)].tokens} == {ALICE, BOB, CAROL, DAVE}
    assert [e.address for e in third[(BOB, 1)].tokens] == [CAROL]


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


# --- the shell: TokenFlow with a fake node and send path ---------------------------------------


class Log:
    """What the flow did, in order: the requests to the node and the pairwise plans."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def request(self, frame: object) -> object:
        self.events.append(frame)
        return Ok(id=0)

    async def pairwise(self, plan: list[Pairwise], *, also: Callable[[], None]) -> list[bytes]:
        self.events.append(plan)
        also()
        return [os.urandom(16)]

    async def wait(self, eids: list[bytes]) -> dict[bytes, object]:
        return {}

    def payloads(self) -> list[tuple[str, GroupTokens]]:
        found = []
        for event in self.events:
            if isinstance(event, list):
                for p in event:
                    payload = unpack_payload(p.plaintext)
                    assert isinstance(payload, GroupTokens)
                    found.append((p.address, payload))
        return found


@dataclass
class Info:
    mailbox: bytes


@dataclass
class Holder:
    info: Info


def flow(member: Member, log: Log) -> TokenFlow:
    return TokenFlow(
        member.book,
        log,  # type: ignore[arg-type]
        store=member.store,
        me=(member.address, 1),
        account=Holder(Info(member.address.encode()[:16].ljust(16, b"-"))),  # type: ignore[arg-type]
        request=log.request,
        entropy=DeterministicEntropy(member.address.encode()),
    )


async def test_a_member_registers_before_it_reports_and_the_admin_publishes_once_all_did(
    people: dict[str, Member],
) -> None:
    ng, _ = founded(people, "bob")
    alice_log, bob_log = Log(), Log()
    alice, bob = flow(people["alice"], alice_log), flow(people["bob"], bob_log)
    assert await alice.token_step(ng) == pytest.approx(tokens.PUBLISH_QUIET, abs=0.1)
    (registered,) = alice_log.events
    assert isinstance(registered, SetGroupToken)
    assert registered.revoke is None
    bob_ng = joined(people, "bob", ng)
    assert await bob.token_step(bob_ng) is None
    first, report = bob_log.events
    assert isinstance(first, SetGroupToken)  # registered before anyone learns it
    assert first.verifier == delivery_token_verifier(bob_ng.tokens.token or b"")
    ((to, payload),) = bob_log.payloads()
    assert to == ALICE
    assert [e.address for e in payload.tokens] == [BOB]
    assert isinstance(report, list)
    assert report[0].devices == frozenset({1})
    # the report reaches alice: every member reported, so she publishes at once
    assert report_payload(people, "bob", "alice", payload)
    assert await alice.token_step(ng) is None
    ((to, published),) = alice_log.payloads()
    assert to == BOB
    assert {e.address for e in published.tokens} == {ALICE, BOB}
    assert ng.tokens.confirmed
    assert await bob.token_step(bob_ng) is None
    assert len(bob_log.events) == 2  # nothing more to do


async def test_after_a_removal_a_new_token_is_registered_and_the_old_one_revoked_later(
    people: dict[str, Member], autojump_clock: trio.testing.MockClock
) -> None:
    ng, _ = founded(people, "bob", "carol")
    alice_log, bob_log = Log(), Log()
    alice, bob = flow(people["alice"], alice_log), flow(people["bob"], bob_log)
    bob_ng = joined(people, "bob", ng)
    await bob.token_step(bob_ng)
    old = bob_ng.tokens.token
    assert ng.group is not None
    removal, _ = ng.group.propose(OpRemove(address=CAROL))
    assert people["bob"].take(people["alice"], note(removal, ng.group_id)) is None
    assert bob_ng.tokens.rotate
    bob_log.events.clear()
    await bob.token_step(bob_ng)
    register, _ = bob_log.events
    assert isinstance(register, SetGroupToken)
    assert register.revoke is None  # the old token stays until the new one is published
    assert bob_ng.tokens.serial == 2
    assert bob_ng.tokens.revoke == [old]
    # alice publishes the new token; bob revokes the old one after the grace period
    ((_, rotated),) = bob_log.payloads()
    assert report_payload(people, "bob", "alice", rotated)
    await alice.token_step(ng)
    (_, published), *_ = alice_log.payloads()
    assert report_payload(people, "alice", "bob", published)
    assert bob_ng.tokens.confirmed
    wait = await bob.token_step(bob_ng)
    assert wait == pytest.approx(tokens.REVOKE_GRACE, abs=0.1)
    await trio.sleep(tokens.REVOKE_GRACE)
    bob_log.events.clear()
    assert await bob.token_step(bob_ng) is None
    (revoked,) = bob_log.events
    assert isinstance(revoked, SetGroupToken)
    assert revoked.verifier is None
    assert revoked.revoke == delivery_token_verifier(old or b"")
    assert bob_ng.tokens.revoke == []


async def test_a_removed_member_revokes_its_own_token(people: dict[str, Member]) -> None:
    ng, _ = founded(people, "bob", "carol")
    carol_log = Log()
    carol = flow(people["carol"], carol_log)
    carol_ng = joined(people, "carol", ng)
    await carol.token_step(carol_ng)
    token = carol_ng.tokens.token
    assert ng.group is not None
    removal, _ = ng.group.propose(OpRemove(address=CAROL))
    assert people["carol"].take(people["alice"], note(removal, ng.group_id)) is None
    carol_log.events.clear()
    await carol.token_step(carol_ng)
    (revoked,) = carol_log.events
    assert isinstance(revoked, SetGroupToken)
    assert revoked.revoke == delivery_token_verifier(token or b"")
    assert carol_ng.tokens.token is None


def report_payload(people: dict[str, Member], sender: str, to: str, payload: GroupTokens) -> bool:
    s = people[sender]
    return people[to].book.receive_tokens(s.address, 1, payload, s.sig)


def test_a_publication_waits_for_a_quiet_moment_but_not_forever(people: dict[str, Member]) -> None:
    ng, _ = founded(people, "bob", "carol")
    alice = (ALICE, 1)
    assert tokens.publication_due(ng, 0.0, 0.0, 0.0) is None  # nothing to publish
    tokens.merge(ng, (BOB, 1), False, (entry(BOB),), alice)
    assert tokens.publication_due(ng, 0.5, 0.0, 0.0) == pytest.approx(tokens.PUBLISH_QUIET - 0.5)
    late = tokens.PUBLISH_WAIT - 0.2  # reports kept coming: the first one bounds the wait
    assert tokens.publication_due(ng, late, 0.0, late) == pytest.approx(0.2)
    tokens.draw(ng.tokens, DeterministicEntropy(b"a"), alice, b"a" * 16)
    tokens.merge(ng, (CAROL, 1), False, (entry(CAROL),), alice)
    assert tokens.publication_due(ng, 0.1, 0.0, 0.1) == 0.0  # every member reported
