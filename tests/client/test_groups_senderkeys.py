"""Sender keys and the Group facade (client.groups.senderkeys, client.groups.group).

Every security test has an accepting control next to the refusal, so it can fail."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.groups import (
    MAX_SKIP,
    BadControl,
    ChangeRefused,
    DistributionRefused,
    Group,
    GroupControl,
    NotMember,
    RotationNeeded,
    SenderKeyError,
    SenderKeys,
    TooLarge,
    pack_control,
    unpack_control,
)
from client.groups.senderkeys import MAX_PLAINTEXT, chain_step
from suites import SUITE_NAMES, Suite, get_suite, labels
from tests.client.pairs import DeterministicEntropy
from tests.client.test_groups_admin import Person, people
from wire import decode, encode
from wire.group import OpAdd, OpRemove, OpRename, SenderKeyMessage, SenderKeySigned


@pytest.fixture(params=SUITE_NAMES)
def suite(request: pytest.FixtureRequest) -> Suite:
    return get_suite(request.param)


@pytest.fixture
def cast(suite: Suite) -> dict[str, Person]:
    return people(suite.name)


@dataclasses.dataclass
class World:
    """Alice's group with bob and carol, everyone holding everyone's sender key."""

    groups: dict[str, Group]
    cast: dict[str, Person]
    entropy: DeterministicEntropy

    def exchange(self, sender: str, dist: bytes, to: tuple[str, ...]) -> None:
        for name in to:
            self.groups[name].receive_distribution(self.cast[sender].address, 1, dist)

    def deliver_change(self, change: bytes, to: tuple[str, ...]) -> None:
        for name in to:
            self.groups[name].receive_change(change)


@pytest.fixture
def world(cast: dict[str, Person]) -> World:
    entropy = DeterministicEntropy(b"sender-keys")
    alice = cast["alice"]
    others = (cast["bob"].member, cast["carol"].member)
    group, _ = Group.create(alice.identity, alice.address, 1, "g", others, entropy)
    groups = {"alice": group}
    for name in ("bob", "carol"):
        p = cast[name]
        groups[name] = Group.join(p.identity, p.address, 1, group.welcome(), entropy)
    w = World(groups, cast, entropy)
    for name, g in groups.items():
        w.exchange(name, g.distribution(), tuple(n for n in groups if n != name))
    return w


def test_round_trip_names_the_sender(world: World) -> None:
    body = world.groups["alice"].encrypt(b"hello group")
    for name in ("bob", "carol"):
        message = world.groups[name].decrypt(body)
        assert message.plaintext == b"hello group"
        assert (message.sender, message.device) == (world.cast["alice"].address, 1)
    from_bob = world.groups["bob"].encrypt(b"hi")
    assert world.groups["alice"].decrypt(from_bob).sender == world.cast["bob"].address


def test_message_is_padded_to_a_bucket(world: World) -> None:
    message = decode(world.groups["alice"].encrypt(b"x" * 1024), SenderKeyMessage)
    assert len(message.c) == 4096 + 16  # 1 KiB + marker -> 4 KiB bucket, plus the GCM tag


def test_out_of_order_within_the_window(world: World) -> None:
    bodies = [world.groups["alice"].encrypt(b"m%d" % i) for i in range(5)]
    bob = world.groups["bob"]
    for i in (3, 0, 4, 1, 2):
        assert bob.decrypt(bodies[i]).plaintext == b"m%d" % i


def test_replay_is_refused(world: World) -> None:
    bob = world.groups["bob"]
    early, late = (world.groups["alice"].encrypt(t) for t in (b"early", b"late"))
    assert bob.decrypt(late).plaintext == b"late"  # control
    with pytest.raises(SenderKeyError):
        bob.decrypt(late)
    assert bob.decrypt(early).plaintext == b"early"  # skipped key, used once
    with pytest.raises(SenderKeyError):
        bob.decrypt(early)


def test_skip_window_is_bounded(world: World) -> None:
    alice, bob = world.groups["alice"], world.groups["bob"]
    own = alice.keys.own

    def lose(n: int) -> None:  # messages sent and lost: the chain moves on
        for _ in range(n):
            own.key, _ = chain_step(alice.keys.suite, own.key)
            own.iteration += 1

    lose(MAX_SKIP)
    assert bob.decrypt(alice.encrypt(b"at the edge")).plaintext == b"at the edge"  # control
    lose(MAX_SKIP + 1)
    with pytest.raises(SenderKeyError):
        bob.decrypt(alice.encrypt(b"too far"))


def test_member_cannot_forge_another_members_message(world: World) -> None:
    """Carol holds alice's chain key and signs with her own key: refused."""
    alice, bob, carol = (world.groups[n] for n in ("alice", "bob", "carol"))
    genuine = decode(alice.encrypt(b"genuine"), SenderKeyMessage)
    suite = alice.keys.suite
    stolen = bob.keys.chains[genuine.chain]  # same state as carol's copy
    _, mk = chain_step(suite, carol.keys.chains[genuine.chain].key)
    forged_c = _reseal(suite, mk, genuine, b"forged by carol")
    signed = SenderKeySigned(
        v=genuine.v,
        group=genuine.group,
        chain=genuine.chain,
        iteration=genuine.iteration,
        c=forged_c,
    )
    sig = suite.sig.sign(carol.keys.own.sig_key, encode(signed), labels.CTX_SENDER_KEY_MESSAGE)
    forged = dataclasses.replace(genuine, c=forged_c, sig=sig)
    before = (stolen.iteration, stolen.key)
    with pytest.raises(SenderKeyError):
        bob.decrypt(encode(forged))
    assert (stolen.iteration, stolen.key) == before  # nothing moved
    assert bob.decrypt(encode(genuine)).plaintext == b"genuine"  # control


def _reseal(suite: Suite, mk: bytes, template: SenderKeyMessage, text: bytes) -> bytes:
    from client.groups.senderkeys import _aad, _aead_keys

    key, nonce = _aead_keys(suite, mk)
    aad = _aad(suite, template.group, template.chain, template.iteration)
    return suite.aead.seal(key, nonce, suite.pad(text), aad)


def test_tampered_message_is_refused(world: World) -> None:
    alice, bob = world.groups["alice"], world.groups["bob"]
    genuine = decode(alice.encrypt(b"payload"), SenderKeyMessage)
    tampered = [
        dataclasses.replace(genuine, c=bytes([genuine.c[0] ^ 1]) + genuine.c[1:]),
        dataclasses.replace(genuine, iteration=genuine.iteration + 1),
        dataclasses.replace(genuine, sig=genuine.sig[:-1] + bytes([genuine.sig[-1] ^ 1])),
        dataclasses.replace(genuine, group=bytes(16)),
    ]
    for bad in tampered:
        with pytest.raises(SenderKeyError):
            bob.decrypt(encode(bad))
    with pytest.raises(SenderKeyError):
        bob.decrypt(b"\x93not a message")
    assert bob.decrypt(encode(genuine)).plaintext == b"payload"  # control


def test_removal_forces_rotation_and_locks_the_removed_out(world: World) -> None:
    alice, bob, carol = (world.groups[n] for n in ("alice", "bob", "carol"))
    before = alice.encrypt(b"before")
    assert carol.decrypt(before).plaintext == b"before"  # control: carol reads while a member
    change, result = alice.propose(OpRemove(address=world.cast["carol"].address))
    assert result.removed == {world.cast["carol"].address}
    world.deliver_change(change, ("bob", "carol"))
    assert not carol.is_member
    for g in (alice, bob):
        assert g.needs_rotation
        with pytest.raises(RotationNeeded):
            g.encrypt(b"not yet")
    with pytest.raises(NotMember):
        carol.encrypt(b"carol is out")
    old_chain = alice.keys.own.chain
    world.exchange("alice", alice.rotate(world.entropy), ("bob",))
    world.exchange("bob", bob.rotate(world.entropy), ("alice",))
    assert alice.keys.own.chain != old_chain
    after = alice.encrypt(b"after")
    assert bob.decrypt(after).plaintext == b"after"  # control
    with pytest.raises(SenderKeyError):
        carol.decrypt(after)
    with pytest.raises(SenderKeyError):
        carol.decrypt(bob.encrypt(b"after, from bob"))
    # bob no longer holds carol's chain, and refuses a distribution from her
    assert all(c.sender != world.cast["carol"].address for c in bob.keys.chains.values())
    with pytest.raises(NotMember):
        bob.receive_distribution(world.cast["carol"].address, 1, carol.keys.distribution())


def test_new_member_cannot_read_earlier_messages(world: World) -> None:
    alice, bob = world.groups["alice"], world.groups["bob"]
    dave = world.cast["dave"]
    earlier = alice.encrypt(b"before dave")
    change, _ = alice.propose(OpAdd(member=dave.member))
    world.deliver_change(change, ("bob", "carol"))
    joined = Group.join(dave.identity, dave.address, 1, alice.welcome(), world.entropy)
    joined.receive_distribution(world.cast["alice"].address, 1, alice.distribution())
    with pytest.raises(SenderKeyError):
        joined.decrypt(earlier)
    assert bob.decrypt(earlier).plaintext == b"before dave"  # control
    later = alice.encrypt(b"after dave")
    assert joined.decrypt(later).plaintext == b"after dave"


def test_distribution_rules(world: World) -> None:
    alice, bob, carol = (world.groups[n] for n in ("alice", "bob", "carol"))
    with pytest.raises(NotMember):  # erin is not a member
        bob.receive_distribution(world.cast["erin"].address, 1, alice.distribution())
    with pytest.raises(NotMember):  # alice has no device 2
        bob.receive_distribution(world.cast["alice"].address, 2, alice.distribution())
    with pytest.raises(DistributionRefused):  # carol passes alice's chain off as hers
        bob.receive_distribution(world.cast["carol"].address, 1, alice.distribution())
    with pytest.raises(DistributionRefused):
        bob.receive_distribution(world.cast["carol"].address, 1, b"junk")
    bob.receive_distribution(world.cast["carol"].address, 1, carol.distribution())  # control


def test_previous_chain_still_opens_after_rotation(world: World) -> None:
    alice, bob = world.groups["alice"], world.groups["bob"]
    in_flight = alice.encrypt(b"sent before rotating")
    world.exchange("alice", alice.rotate(world.entropy), ("bob", "carol"))
    assert bob.decrypt(alice.encrypt(b"new chain")).plaintext == b"new chain"
    assert bob.decrypt(in_flight).plaintext == b"sent before rotating"


def test_group_round_trips_through_bytes(world: World) -> None:
    alice, bob = world.groups["alice"], world.groups["bob"]
    bodies = [alice.encrypt(b"m%d" % i) for i in range(3)]
    assert bob.decrypt(bodies[2]).plaintext == b"m2"  # leaves two skipped keys
    data = bob.to_bytes()
    again = Group.from_bytes(bob.identity, data)
    assert again.to_bytes() == data
    assert again.state.hash == bob.state.hash
    assert again.decrypt(bodies[0]).plaintext == b"m0"
    with pytest.raises(SenderKeyError):
        again.decrypt(bodies[2])
    assert alice.decrypt(again.encrypt(b"from the reloaded bob")).sender == bob.address


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=300))
def test_decrypt_of_arbitrary_bytes_raises_only_its_error(data: bytes) -> None:
    suite = get_suite("xwing")
    keys = SenderKeys.create(suite, bytes(16), DeterministicEntropy(b"fuzz"))
    with pytest.raises(SenderKeyError):
        keys.decrypt(data)


def test_control_messages_carry_changes_histories_and_distributions(world: World) -> None:
    alice, bob = world.groups["alice"], world.groups["bob"]
    group_id = alice.state.group_id
    change, _ = alice.propose(OpAdd(member=world.cast["dave"].member))
    control = unpack_control(pack_control(group_id, change))
    result = bob.receive_control(world.cast["alice"].address, 1, control)
    assert result is not None
    assert result.added == {world.cast["dave"].address}
    assert bob.state.hash == alice.state.hash

    alice.propose(OpRename(name="via history"))
    history = unpack_control(pack_control(group_id, alice.welcome()))
    merged = bob.receive_control(world.cast["alice"].address, 1, history)
    assert merged is not None
    assert bob.state.name == "via history"

    world.exchange("alice", alice.rotate(world.entropy), ())
    dist = unpack_control(pack_control(group_id, alice.distribution()))
    assert bob.receive_control(world.cast["alice"].address, 1, dist) is None
    assert bob.decrypt(alice.encrypt(b"new chain")).plaintext == b"new chain"

    other = GroupControl(group=bytes(16), body=control.body)
    with pytest.raises(ChangeRefused):  # a control message for another group
        bob.receive_control(world.cast["alice"].address, 1, other)
    with pytest.raises(BadControl):
        unpack_control(b"junk")
    with pytest.raises(BadControl):
        pack_control(group_id, b"junk")


def test_largest_message_opens_and_larger_is_refused(world: World) -> None:
    alice, bob = world.groups["alice"], world.groups["bob"]
    biggest = b"\x01" * MAX_PLAINTEXT
    assert bob.decrypt(alice.encrypt(biggest)).plaintext == biggest  # control
    with pytest.raises(TooLarge):
        alice.encrypt(biggest + b"\x01")
