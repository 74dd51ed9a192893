"""1:1 calls across replicas, the parts without a network (issue 18, item 4;
node.calls.replicas): which replica a ``claim_leg`` record sends a bridge to, and the
refusals with their stable codes; ``ReplicaCalls`` over one in-memory store (the Redis one
is the same contract, tests/node/store) with a fake of ``MediaLinks.bridge_at``: a leg is
claimed once (a second bridge is ``call.leg_taken`` without dialling), the holder's
announced address is dialled, a holder with none is ``call.unreachable``, store failures
are ``call.unreachable``; a claim this replica made is given back when the bridge fails
after it (unreachable, refused, cancelled), so the next bridge to the leg can succeed,
and a claim refused is left alone; the watch closes the link to a replica whose address has gone,
and only then. A peer domain's join carried here (``ReplicaCalls.carry``, with a fake of
``MediaLinks.chain_at``) is claimed and chained the same way, or refused with one of the
codes the holder would give, and never raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pytest
import trio

from node.calls.peering import LinkPeer, ReplicaPeer
from node.calls.replicas import (
    MAX_CARRYING,
    RELEASE_TIMEOUT,
    ReplicaCalls,
    holder_of,
    replica_peer,
)
from node.errors import CALL_LEG_TAKEN, CALL_NO_LEG, CALL_UNREACHABLE, NodeError
from node.store import LegRecord, MemoryStore, StoreError
from wire.media_link import CLOSE_LINK_DONE, LinkJoin, LinkJoinRefused

HERE, THERE = b"replica-here", b"replica-there"
LEG, FAR = bytes(range(16)), bytes(range(16, 32))
T0: Final = 1_700_000_000_000
TTL: Final = 60_000
ADDRESS, PORT = "10.0.0.7", 7481


def _record(*, replica: bytes = THERE, claimed: bool = False) -> LegRecord:
    return LegRecord(FAR, replica, bytes(32), T0 + TTL, claimed)


def test_a_claimed_record_of_another_replica_names_it() -> None:
    assert holder_of(_record(), HERE) == THERE


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (None, CALL_NO_LEG),  # unknown or expired
        (_record(claimed=True), CALL_LEG_TAKEN),  # a bridge claimed it first
        (_record(replica=HERE), CALL_NO_LEG),  # recorded here, not held here: it ended
    ],
)
def test_a_record_that_cannot_be_bridged_is_refused(record: LegRecord | None, code: str) -> None:
    with pytest.raises(NodeError) as refused:
        holder_of(record, HERE)
    assert refused.value.code == code


@dataclass
class Channel:
    closes: list[tuple[int, str]] = field(default_factory=list)

    def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))


@dataclass
class Bridges:
    closed: bool = False
    joined: frozenset[int] = frozenset({7})
    pending: frozenset[int] = frozenset()


@dataclass
class Link:
    channel: Channel = field(default_factory=Channel)
    bridges: Bridges = field(default_factory=Bridges)


@dataclass
class Links:
    """A fake of ``MediaLinks.bridge_at``: records the bridges, answers one link."""

    link: Link = field(default_factory=Link)
    bridged: list[tuple[LinkPeer, bytes, bytes]] = field(default_factory=list)
    refusal: NodeError | None = None
    failure: Exception | None = None
    go: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        self.go.set()

    async def bridge_at(self, peer: LinkPeer, leg_id: bytes, far_leg: bytes) -> Link:
        self.bridged.append((peer, leg_id, far_leg))
        await self.go.wait()
        if self.refusal is not None:
            raise self.refusal
        return self.link

    async def chain_at(self, peer: ReplicaPeer, near: Near, join: LinkJoin) -> Link:
        self.bridged.append((peer, b"chain", join.leg_id))
        await self.go.wait()
        if self.refusal is not None:
            raise self.refusal
        if self.failure is not None:
            raise self.failure
        return self.link


@dataclass(eq=False)
class Near:
    """A peer domain's link that reached this replica: what it was told."""

    told: list[object] = field(default_factory=list)

    def send(self, message: object) -> None:
        self.told.append(message)


class BrokenStore(MemoryStore):
    async def claim_leg(self, leg_id: bytes, now: int) -> LegRecord | None:
        raise StoreError("the store does not answer")


class NoRelease(MemoryStore):
    async def release_leg(self, leg_id: bytes, now: int) -> bool:
        raise StoreError("the store does not answer")


class SilentRelease(MemoryStore):
    async def release_leg(self, leg_id: bytes, now: int) -> bool:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


@dataclass
class World:
    store: MemoryStore = field(default_factory=MemoryStore)
    links: Links = field(default_factory=Links)
    now: int = T0

    def calls(self) -> ReplicaCalls:
        return ReplicaCalls(
            self.links,  # type: ignore[arg-type]  # the fake's link is a PeerLink's shape
            self.store,
            self.store,
            HERE,
            now_ms=lambda: self.now,
        )

    async def callee(self, *, announced: bool = True, replica: bytes = THERE) -> None:
        await self.store.add_leg(LegRecord(FAR, replica, bytes(32), T0 + TTL))
        if announced:
            await self.store.announce_media(THERE, ADDRESS, PORT, T0, TTL)

    async def claimed(self) -> bool:
        record = await self.store.leg(FAR, self.now)
        assert record is not None
        return record.claimed


async def test_a_leg_held_elsewhere_is_claimed_and_bridged_at_its_holder() -> None:
    world = World()
    await world.callee()
    calls = world.calls()
    await calls.bridge(LEG, FAR)
    assert world.links.bridged == [(ReplicaPeer(THERE, ADDRESS, PORT), LEG, FAR)]
    record = await world.store.leg(FAR, T0)
    assert record is not None
    assert record.claimed
    with pytest.raises(NodeError) as taken:
        await calls.bridge(bytes(16), FAR)
    assert taken.value.code == CALL_LEG_TAKEN
    assert len(world.links.bridged) == 1  # refused without dialling


async def test_an_unknown_leg_is_no_leg_and_a_holder_not_announced_is_unreachable() -> None:
    world = World()
    calls = world.calls()
    with pytest.raises(NodeError) as unknown:
        await calls.bridge(LEG, FAR)
    assert unknown.value.code == CALL_NO_LEG
    await world.callee(announced=False)
    with pytest.raises(NodeError) as unannounced:
        await calls.bridge(LEG, FAR)
    assert unannounced.value.code == CALL_UNREACHABLE
    assert world.links.bridged == []
    assert not await world.claimed()  # given back: the next bridge may succeed
    assert calls.released == 1
    await world.store.announce_media(THERE, ADDRESS, PORT, T0, TTL)
    await calls.bridge(LEG, FAR)
    assert await world.claimed()
    assert (calls.bridged, calls.released) == (1, 1)


async def test_a_leg_recorded_here_is_no_leg_and_its_claim_given_back() -> None:
    world = World()
    await world.callee(replica=HERE)
    calls = world.calls()
    with pytest.raises(NodeError) as ended:
        await calls.bridge(LEG, FAR)
    assert ended.value.code == CALL_NO_LEG
    assert not await world.claimed()
    assert world.links.bridged == []


async def test_store_failures_are_unreachable() -> None:
    world = World(store=BrokenStore())
    with pytest.raises(NodeError) as failed:
        await world.calls().bridge(LEG, FAR)
    assert failed.value.code == CALL_UNREACHABLE
    store = MemoryStore()
    await store.aclose()
    with pytest.raises(NodeError) as lookup:
        await replica_peer(store, THERE, T0, "the call leg")
    assert lookup.value.code == CALL_UNREACHABLE


async def test_the_holders_refusal_reaches_the_caller() -> None:
    world = World()
    await world.callee()
    world.links.refusal = NodeError(CALL_NO_LEG, "no such call leg")
    calls = world.calls()
    with pytest.raises(NodeError) as refused:
        await calls.bridge(LEG, FAR)
    assert refused.value.code == CALL_NO_LEG
    assert not await world.claimed()
    world.links.refusal = None
    await calls.bridge(LEG, FAR)  # the holder joins it this time
    assert len(world.links.bridged) == 2
    assert (calls.bridged, calls.released) == (1, 1)


async def test_a_claim_refused_is_another_bridges_and_stays() -> None:
    world = World()
    await world.callee()
    calls = world.calls()
    world.links.go = trio.Event()  # the holder has not answered the first bridge yet
    async with trio.open_nursery() as nursery:
        nursery.start_soon(calls.bridge, LEG, FAR)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(NodeError) as taken:
            await calls.bridge(bytes(16), FAR)
        assert taken.value.code == CALL_LEG_TAKEN
        assert await world.claimed()  # the first bridge's claim, not given back
        world.links.go.set()
    assert await world.claimed()
    assert (calls.bridged, calls.released) == (1, 0)


async def test_a_cancelled_bridge_gives_its_claim_back() -> None:
    world = World()
    await world.callee()
    calls = world.calls()
    world.links.go = trio.Event()  # the holder never answers
    with trio.move_on_after(0.05):
        await calls.bridge(LEG, FAR)
    assert not await world.claimed()
    assert (calls.bridged, calls.released) == (0, 1)


async def test_a_release_the_store_fails_leaves_the_bridges_own_error() -> None:
    world = World(store=NoRelease())
    await world.callee()
    world.links.refusal = NodeError(CALL_NO_LEG, "no such call leg")
    calls = world.calls()
    with pytest.raises(NodeError) as refused:
        await calls.bridge(LEG, FAR)
    assert refused.value.code == CALL_NO_LEG  # not the store's error
    assert await world.claimed()  # logged; the leg stays claimed until it ends
    assert calls.released == 0


async def test_a_release_the_store_does_not_answer_is_given_up_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = World(store=SilentRelease())
    await world.callee()
    world.links.refusal = NodeError(CALL_NO_LEG, "no such call leg")
    start = trio.current_time()
    with pytest.raises(NodeError) as refused:
        await world.calls().bridge(LEG, FAR)
    assert refused.value.code == CALL_NO_LEG
    assert trio.current_time() - start == pytest.approx(RELEASE_TIMEOUT)


async def test_the_watch_closes_the_link_to_a_replica_whose_address_has_gone() -> None:
    world = World()
    await world.callee()
    calls = world.calls()
    await calls.bridge(LEG, FAR)
    channel = world.links.link.channel
    world.now = T0 + TTL // 2
    await calls.check()
    assert channel.closes == []  # still announced
    world.now = T0 + TTL  # the announcement expired: the replica crashed
    await calls.check()
    assert channel.closes == [(CLOSE_LINK_DONE, "replica gone")]
    assert calls.gone == 1
    await calls.check()
    assert len(channel.closes) == 1  # forgotten


async def test_the_watch_forgets_a_link_without_bridges_and_keeps_it_on_store_failures() -> None:
    world = World()
    await world.callee()
    calls = world.calls()
    await calls.bridge(LEG, FAR)
    await world.store.aclose()
    await calls.check()  # the lookup fails: logged, the link kept
    assert world.links.link.channel.closes == []
    world.links.link.bridges.joined = frozenset()
    world.now = T0 + TTL
    await calls.check()  # no bridge on it any more: forgotten, not closed
    assert world.links.link.channel.closes == []
    assert calls.gone == 0


async def test_a_peer_domains_join_is_carried_to_the_holder_or_refused_with_a_peer_code() -> None:
    world = World()
    calls = world.calls()
    near = Near()

    async def carry(channel: int) -> None:
        await calls.carry(near, LinkJoin(FAR, channel))  # type: ignore[arg-type]

    await carry(1)  # not recorded anywhere
    await world.callee(announced=False)
    await carry(2)  # recorded, its holder not announced: unreachable, told as no_leg
    assert near.told == [LinkJoinRefused(1, CALL_NO_LEG), LinkJoinRefused(2, CALL_NO_LEG)]
    assert world.links.bridged == []

    world = World()
    calls, near = world.calls(), Near()
    await world.callee()
    await carry(3)
    assert world.links.bridged == [(ReplicaPeer(THERE, ADDRESS, PORT), b"chain", FAR)]
    assert near.told == []  # answered LinkJoined by the chain itself
    assert calls.carried == 1
    await carry(4)  # claimed by the first: taken, nothing dialled
    assert near.told == [LinkJoinRefused(4, CALL_LEG_TAKEN)]
    assert len(world.links.bridged) == 1

    world = World()
    calls, near = world.calls(), Near()
    await world.callee()
    world.links.failure = RuntimeError("a bug")
    await carry(5)  # never raises into the link's tasks
    assert near.told == [LinkJoinRefused(5, CALL_NO_LEG)]
    assert calls.carried == 0
    assert not await world.claimed()  # given back
    world.links.failure = None
    world.links.refusal = NodeError(CALL_LEG_TAKEN, "the call leg is bridged already")
    await carry(6)  # the holder refused: told as the holder's code, the claim given back
    assert near.told[-1] == LinkJoinRefused(6, CALL_LEG_TAKEN)
    assert not await world.claimed()
    world.links.refusal = None
    await carry(7)
    assert await world.claimed()
    assert (calls.carried, calls.released) == (1, 2)


async def test_a_peer_link_has_a_bounded_number_of_joins_carried_at_once() -> None:
    world = World()
    calls, near = world.calls(), Near()
    world.links.go = trio.Event()  # the holders do not answer yet
    legs = [bytes([i]) * 16 for i in range(MAX_CARRYING)]
    for leg in legs:
        await world.store.add_leg(LegRecord(leg, THERE, bytes(32), T0 + TTL))
    await world.store.announce_media(THERE, ADDRESS, PORT, T0, TTL)
    async with trio.open_nursery() as nursery:
        for i, leg in enumerate(legs):
            nursery.start_soon(calls.carry, near, LinkJoin(leg, i))  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        await calls.carry(near, LinkJoin(FAR, 99))  # type: ignore[arg-type]
        assert near.told == [LinkJoinRefused(99, CALL_NO_LEG)]  # at once, nothing looked up
        assert len(world.links.bridged) == MAX_CARRYING
        world.links.go.set()
    assert calls.carried == MAX_CARRYING
    await world.callee()
    await calls.carry(near, LinkJoin(FAR, 100))  # type: ignore[arg-type]
    assert calls.carried == MAX_CARRYING + 1
