"""Group state and signed administration (client.groups.changes, client.groups.state).

Every security test has an accepting control next to the refusal, so it can fail."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.groups import (
    ChangeRefused,
    ForgedChange,
    Group,
    GroupState,
    GroupView,
    NotAdmin,
    NotMember,
    change_id,
    create_group,
    make_change,
    member_of,
    verify_change,
)
from client.groups.changes import sign_change
from client.identity import Identity
from suites import SUITE_NAMES, Suite, get_suite
from tests.client.pairs import DeterministicEntropy
from wire import decode, encode
from wire.group import (
    GroupChange,
    GroupDevice,
    GroupMember,
    OpAdd,
    OpLeave,
    OpPromote,
    OpRemove,
    OpRename,
)

NAMES = ("alice", "bob", "carol", "dave", "erin")


@dataclasses.dataclass
class Person:
    address: str
    identity: Identity

    @property
    def member(self) -> GroupMember:
        return member_of(self.identity.suite, self.address, {1: self.identity.public.sig})

    def sign(self, view: GroupView, op: object) -> GroupChange:
        return make_change(view, self.identity, self.address, 1, op)  # type: ignore[arg-type]


_PEOPLE: dict[str, dict[str, Person]] = {}


def people(suite_name: str) -> dict[str, Person]:
    """Five identities per suite, made once per test session (key generation is the slow
    part)."""
    if suite_name not in _PEOPLE:
        suite = get_suite(suite_name)
        entropy = DeterministicEntropy(b"groups-" + suite_name.encode())
        _PEOPLE[suite_name] = {
            n: Person(f"{n}@example.org", Identity.generate(suite, entropy)) for n in NAMES
        }
    return _PEOPLE[suite_name]


@pytest.fixture(params=SUITE_NAMES)
def suite(request: pytest.FixtureRequest) -> Suite:
    return get_suite(request.param)


@pytest.fixture
def cast(suite: Suite) -> dict[str, Person]:
    return people(suite.name)


def new_group(cast: dict[str, Person], members: tuple[str, ...] = ("bob", "carol")) -> GroupChange:
    """Alice creates a group with ``members``."""
    alice = cast["alice"]
    others = tuple(cast[n].member for n in members)
    entropy = DeterministicEntropy(b"group-id")
    return create_group(alice.identity, alice.address, 1, "team", others, entropy)


def states(create: GroupChange, n: int) -> list[GroupState]:
    return [GroupState(create) for _ in range(n)]


# --- creation and plain changes -----------------------------------------------------------


def test_create_lists_members_and_admin(cast: dict[str, Person]) -> None:
    create = new_group(cast)
    state = GroupState(create)
    assert state.epoch == 0
    assert state.name == "team"
    assert len(state.group_id) == 16
    assert set(state.members) == {cast[n].address for n in ("alice", "bob", "carol")}
    assert state.admins == {cast["alice"].address}
    assert state.chain() == (create,)


def test_add_promote_rename_leave_remove(cast: dict[str, Person]) -> None:
    alice, bob, dave = cast["alice"], cast["bob"], cast["dave"]
    state = GroupState(new_group(cast))
    result = state.apply(alice.sign(state.view, OpAdd(member=dave.member)))
    assert result.status == "applied"
    assert result.added == {dave.address}
    state.apply(alice.sign(state.view, OpPromote(address=bob.address)))
    assert state.admins == {alice.address, bob.address}
    state.apply(bob.sign(state.view, OpRename(name="renamed")))
    assert state.name == "renamed"
    result = state.apply(dave.sign(state.view, OpLeave(address=dave.address)))
    assert result.removed == {dave.address}
    result = state.apply(bob.sign(state.view, OpRemove(address=cast["carol"].address)))
    assert result.removed == {cast["carol"].address}
    assert state.epoch == 5
    assert set(state.members) == {alice.address, bob.address}


def test_non_admin_change_is_refused(cast: dict[str, Person]) -> None:
    alice, bob, dave = cast["alice"], cast["bob"], cast["dave"]
    state = GroupState(new_group(cast))
    before = state.hash
    with pytest.raises(NotAdmin) as caught:
        state.apply(bob.sign(state.view, OpAdd(member=dave.member)))
    assert caught.value.code == "group.not_admin"
    assert state.hash == before
    # control: the same change by the admin is accepted
    assert state.apply(alice.sign(state.view, OpAdd(member=dave.member))).status == "applied"


def test_non_member_signer_is_refused(cast: dict[str, Person]) -> None:
    state = GroupState(new_group(cast))
    with pytest.raises(ChangeRefused) as caught:
        state.apply(cast["erin"].sign(state.view, OpRename(name="x")))
    assert caught.value.code == "group.unknown_signer"


def test_modified_change_is_refused(cast: dict[str, Person]) -> None:
    alice, dave, erin = cast["alice"], cast["dave"], cast["erin"]
    state = GroupState(new_group(cast))
    good = alice.sign(state.view, OpAdd(member=dave.member))
    body = dataclasses.replace(good.body, op=OpAdd(member=erin.member))
    with pytest.raises(ForgedChange) as caught:
        state.apply(GroupChange(body=body, key=good.key, sig=good.sig))
    assert caught.value.code == "group.bad_signature"
    flipped = bytes([good.sig[0] ^ 1]) + good.sig[1:]
    with pytest.raises(ForgedChange):
        state.apply(GroupChange(body=good.body, key=good.key, sig=flipped))
    # signed by another key while claiming to be alice: with that key, or with alice's
    by_erin = sign_change(erin.identity, good.body)
    with pytest.raises(ForgedChange):
        state.apply(by_erin)
    with pytest.raises(ForgedChange):
        state.apply(GroupChange(body=good.body, key=good.key, sig=by_erin.sig))
    assert state.epoch == 0
    assert state.apply(good).status == "applied"  # control


def test_change_for_another_group_or_epoch_is_refused(cast: dict[str, Person]) -> None:
    alice = cast["alice"]
    state = GroupState(new_group(cast))
    other = GroupState(
        create_group(alice.identity, alice.address, 1, "other", (), DeterministicEntropy(b"o"))
    )
    with pytest.raises(ChangeRefused) as caught:
        state.apply(alice.sign(other.view, OpRename(name="x")))
    assert caught.value.code == "group.wrong_group"
    body = dataclasses.replace(alice.sign(state.view, OpRename(name="x")).body, epoch=2)
    with pytest.raises(ChangeRefused) as caught:
        state.apply(sign_change(alice.identity, body))
    assert caught.value.code == "group.bad_epoch"
    assert state.apply(alice.sign(state.view, OpRename(name="x"))).status == "applied"


def test_leave_rules(cast: dict[str, Person]) -> None:
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    state = GroupState(new_group(cast))
    with pytest.raises(ChangeRefused):  # bob cannot sign carol's leave
        state.apply(bob.sign(state.view, OpLeave(address=carol.address)))
    with pytest.raises(ChangeRefused) as caught:  # the last admin cannot abandon the group
        state.apply(alice.sign(state.view, OpLeave(address=alice.address)))
    assert caught.value.code == "group.last_admin"
    with pytest.raises(ChangeRefused):  # remove is not for oneself
        state.apply(alice.sign(state.view, OpRemove(address=alice.address)))
    assert state.apply(carol.sign(state.view, OpLeave(address=carol.address))).removed == {
        carol.address
    }


def test_second_creation_is_refused(cast: dict[str, Person]) -> None:
    create = new_group(cast)
    state = GroupState(create)
    alice = cast["alice"]
    body = dataclasses.replace(create.body, epoch=1, parent=state.hash)
    with pytest.raises(ChangeRefused) as caught:
        state.apply(sign_change(alice.identity, body))
    assert caught.value.code == "group.bad_change"


# --- ordering -----------------------------------------------------------------------------


def test_child_before_parent_is_buffered(cast: dict[str, Person]) -> None:
    alice, dave = cast["alice"], cast["dave"]
    create = new_group(cast)
    source = GroupState(create)
    first = alice.sign(source.view, OpAdd(member=dave.member))
    source.apply(first)
    second = alice.sign(source.view, OpPromote(address=dave.address))
    source.apply(second)

    late = GroupState(create)
    assert late.apply(second).status == "buffered"
    assert late.epoch == 0
    assert late.pending_count() == 1
    assert late.apply(second).status == "duplicate"
    result = late.apply(first)
    assert result.status == "applied"
    assert late.hash == source.hash
    assert late.pending_count() == 0


def test_buffered_forgery_is_reported_when_its_parent_arrives(cast: dict[str, Person]) -> None:
    alice, bob, dave = cast["alice"], cast["bob"], cast["dave"]
    create = new_group(cast)
    source = GroupState(create)
    first = alice.sign(source.view, OpAdd(member=dave.member))
    source.apply(first)
    forged = bob.sign(source.view, OpRemove(address=alice.address))  # bob is no admin
    late = GroupState(create)
    assert late.apply(forged).status == "buffered"
    result = late.apply(first)
    assert result.refused == ((change_id(late.suite, forged), "group.not_admin"),)
    assert late.hash == source.hash


def test_concurrent_changes_lowest_id_wins_everywhere(cast: dict[str, Person]) -> None:
    alice, bob = cast["alice"], cast["bob"]
    create = new_group(cast)
    base = GroupState(create)
    promote = alice.sign(base.view, OpPromote(address=bob.address))
    base.apply(promote)
    by_alice = alice.sign(base.view, OpRename(name="alice's"))
    by_bob = bob.sign(base.view, OpRename(name="bob's"))
    winner = min((by_alice, by_bob), key=lambda c: change_id(base.suite, c))
    loser = by_bob if winner is by_alice else by_alice

    one, two = states(create, 2)
    for state in (one, two):
        state.apply(promote)
    one.apply(winner)
    assert one.apply(loser).dropped == ()
    two.apply(loser)
    result = two.apply(winner)
    assert result.dropped == (loser,)  # the loser's author re-issues it on the new head
    assert one.hash == two.hash
    assert one.name == winner.body.op.name  # type: ignore[union-attr]


def test_removed_admin_cannot_undo_its_removal(cast: dict[str, Person]) -> None:
    """Bob, promoted after alice, is removed by alice; he then signs changes on the state
    before his removal (where he was still admin). They are void once the removal is
    known, whatever the order."""
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    create = new_group(cast)
    base = GroupState(create)
    base.apply(alice.sign(base.view, OpPromote(address=bob.address)))
    promoted = base.view
    removal = alice.sign(promoted, OpRemove(address=bob.address))
    backdated = bob.sign(promoted, OpRemove(address=alice.address))
    after_backdated = verify_change(promoted, backdated)
    follow_up = bob.sign(after_backdated, OpRemove(address=carol.address))

    # control: without the removal, bob's changes are the group's state
    control = GroupState.from_changes([create, *base.chain()[1:], backdated, follow_up])
    assert alice.address not in control.members
    assert control.admins == {bob.address}

    finals = set()
    for order in ([removal, backdated, follow_up], [backdated, follow_up, removal]):
        state = GroupState.from_changes([*base.chain(), *order])
        assert bob.address not in state.members
        assert carol.address in state.members
        assert state.admins == {alice.address}
        finals.add(state.hash)
    assert len(finals) == 1


def test_senior_admin_wins_a_mutual_removal(cast: dict[str, Person]) -> None:
    alice, bob = cast["alice"], cast["bob"]
    base = GroupState(new_group(cast))
    base.apply(alice.sign(base.view, OpPromote(address=bob.address)))
    by_alice = alice.sign(base.view, OpRemove(address=bob.address))
    by_bob = bob.sign(base.view, OpRemove(address=alice.address))
    for order in ((by_alice, by_bob), (by_bob, by_alice)):
        state = GroupState.from_changes([*base.chain(), *order])
        assert state.admins == {alice.address}
        assert bob.address not in state.members


# --- convergence under any delivery order -------------------------------------------------


def _scenario(cast: dict[str, Person]) -> tuple[GroupChange, list[GroupChange]]:
    """A history with forks: concurrent renames, an add concurrent with a removal, a
    removed admin's backdated changes, a leave, and chains built on both sides."""
    a, b, c, d, e = (cast[n] for n in NAMES)
    create = new_group(cast)
    changes: list[GroupChange] = []

    def step(view: GroupView, who: Person, op: object) -> GroupView:
        change = who.sign(view, op)
        changes.append(change)
        return verify_change(view, change)

    v0 = GroupState(create).view
    v1 = step(v0, a, OpPromote(address=b.address))
    v2 = step(v1, a, OpPromote(address=c.address))
    v3a = step(v2, a, OpRename(name="from alice"))
    step(v2, b, OpRename(name="from bob"))
    v3c = step(v2, c, OpAdd(member=d.member))
    v4a = step(v3a, a, OpRemove(address=c.address))
    step(v3c, c, OpAdd(member=e.member))
    step(v4a, b, OpAdd(member=e.member))
    v4c = step(v3c, c, OpRemove(address=b.address))
    step(v4c, d, OpLeave(address=d.address))
    return create, changes


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_members_converge_whatever_the_order(suite_name: str, data: st.DataObject) -> None:
    cast = people(suite_name)
    create, changes = _scenario(cast)
    hashes = set()
    for _ in range(3):
        order = data.draw(st.permutations(changes))
        state = GroupState(create)
        for change in order:
            state.apply(change)
        assert state.pending_count() == 0
        hashes.add(state.hash)
    assert len(hashes) == 1
    assert hashes == {GroupState.from_changes([create, *changes]).hash}


# --- welcome and persistence --------------------------------------------------------------


def _grown(cast: dict[str, Person]) -> GroupState:
    state = GroupState(new_group(cast))
    state.apply(cast["alice"].sign(state.view, OpAdd(member=cast["dave"].member)))
    return state


def test_state_round_trips_through_bytes(cast: dict[str, Person]) -> None:
    alice, erin = cast["alice"], cast["erin"]
    state = _grown(cast)
    stale = GroupState.from_changes(state.chain())
    state.apply(alice.sign(state.view, OpRename(name="n")))
    child = alice.sign(state.view, OpAdd(member=erin.member))
    stale.apply(child)  # buffered: its parent is not known there
    data = stale.to_bytes()
    again = GroupState.from_bytes(data)
    assert again.hash == stale.hash
    assert again.pending_count() == 1
    assert again.to_bytes() == data
    with pytest.raises(ChangeRefused):
        GroupState.from_bytes(data[:-1])


def test_join_from_welcome(cast: dict[str, Person]) -> None:
    alice, dave = cast["alice"], cast["dave"]
    entropy = DeterministicEntropy(b"join")
    others = (cast["bob"].member,)
    group, _ = Group.create(alice.identity, alice.address, 1, "g", others, entropy)
    group.propose(OpAdd(member=dave.member))
    joined = Group.join(dave.identity, dave.address, 1, group.welcome(), entropy)
    assert joined.state.hash == group.state.hash
    assert decode(encode(joined.state.history()), type(joined.state.history())).changes
    with pytest.raises(NotMember):  # erin is not in it
        Group.join(cast["erin"].identity, cast["erin"].address, 1, group.welcome(), entropy)


def test_member_with_a_malformed_fingerprint_is_refused(cast: dict[str, Person]) -> None:
    alice, dave = cast["alice"], cast["dave"]
    state = GroupState(new_group(cast))
    broken = GroupMember(address=dave.address, devices=(GroupDevice(id=1, fp=b"short"),))
    with pytest.raises(ChangeRefused) as caught:
        state.apply(alice.sign(state.view, OpAdd(member=broken)))
    assert caught.value.code == "group.bad_change"
    assert state.apply(alice.sign(state.view, OpAdd(member=dave.member))).added == {dave.address}


def _random_history(
    cast: dict[str, Person], data: st.DataObject, steps: int
) -> tuple[GroupChange, list[GroupChange]]:
    """A random tree of valid changes: each one signed by a random member on a random state
    already in the tree (so forks, late and backdated changes all occur)."""
    create = new_group(cast)
    views = [GroupState(create).view]
    changes: list[GroupChange] = []
    people_ = list(cast.values())
    for _ in range(steps):
        parent = data.draw(st.sampled_from([v for v in views if v.members]))
        inside = [p for p in people_ if p.address in parent.members]
        outside = [p for p in people_ if p.address not in parent.members]
        admins = [p for p in inside if parent.is_admin(p.address)]
        kind = data.draw(st.sampled_from(["add", "remove", "promote", "leave", "rename"]))
        signer = data.draw(st.sampled_from(inside if kind == "leave" or not admins else admins))
        target = data.draw(st.sampled_from(outside if kind == "add" and outside else inside))
        op: object = {
            "add": OpAdd(member=target.member),
            "remove": OpRemove(address=target.address),
            "promote": OpPromote(address=target.address),
            "leave": OpLeave(address=signer.address),
            "rename": OpRename(name=f"name {len(changes)}"),
        }[kind]
        change = signer.sign(parent, op)
        try:
            views.append(verify_change(parent, change))
        except ChangeRefused:
            continue
        changes.append(change)
    return create, changes


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_histories_converge(suite_name: str, data: st.DataObject) -> None:
    cast = people(suite_name)
    create, changes = _random_history(cast, data, steps=14)
    hashes = set()
    for _ in range(3):
        state = GroupState(create)
        for change in data.draw(st.permutations(changes)):
            state.apply(change)
        assert state.pending_count() == 0
        hashes.add(state.hash)
    assert hashes == {GroupState.from_changes([create, *changes]).hash}


def test_second_creation_with_the_same_id_is_refused(cast: dict[str, Person]) -> None:
    create = new_group(cast)
    state = GroupState(create)
    other = sign_change(
        cast["bob"].identity,
        dataclasses.replace(create.body, signer=cast["bob"].address, op=OpRename(name="x")),
    )
    with pytest.raises(ChangeRefused) as caught:
        state.apply(other)
    assert caught.value.code == "group.bad_change"
    assert state.pending_count() == 0
    assert state.apply(create).status == "duplicate"  # control: the real one is known


def test_a_200_member_creation_fits_a_pairwise_message(cast: dict[str, Person]) -> None:
    alice = cast["alice"]
    suite = alice.identity.suite
    others = tuple(
        member_of(suite, f"m{i}@example.org", {1: bytes([i % 256]) * suite.sig.public_len})
        for i in range(199)
    )
    create = create_group(
        alice.identity, alice.address, 1, "big", others, DeterministicEntropy(b"b")
    )
    state = GroupState(create)
    assert len(state.members) == 200
    assert len(encode(state.history())) < 64 * 1024
