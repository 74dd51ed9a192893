"""Meeting rooms across replicas (issue 18, item 4; node.sfu.placement, the cascade's rules
for replica links, ``Config.media_internal_host``): two ``RoomPlacement`` of two replicas
over one in-memory ``MediaPlacement`` (the Redis one is the same contract, tested in
tests/node/store), a fake clock, and a fake of the shell's upstream rooms."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final, cast

import pytest
import trio

from node.calls.peering import ReplicaPeer
from node.config import Config, load_config, unicast_ip
from node.errors import CALL_UNREACHABLE, MEETING_NO_ROOM, ConfigError, NodeError
from node.sfu.cascade import Cascade, room_key
from node.sfu.core import Sfu
from node.sfu.linkrooms import LinkRooms
from node.sfu.placement import MEDIA_TTL_MS, ROOM_TTL_MS, RoomPlacement
from node.store import MemoryStore
from tests.node.sfu.test_shell_cascade import ROOM as SHELL_ROOM
from tests.node.sfu.test_shell_cascade import A, World, _seat
from wire.media_link import RoomEnd, RoomJoin, RoomJoined, RoomRefused

DOMAIN: Final = "r.example"
ROOM: Final = bytes(range(16))
X, Y = b"replica-x", b"replica-y"
T0: Final = 1_700_000_000_000
WILDCARD: Final = ".".join(["0"] * 4)


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Upstream:
    """A fake of ``LinkRooms`` as ``RoomPlacement.place`` uses it."""

    remote: dict[bytes, Any] = field(default_factory=dict)
    joined_keys: set[bytes] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def is_remote(self, key: bytes) -> bool:
        return key in self.remote

    def joined(self, key: bytes) -> bool:
        return key in self.joined_keys

    def held_at_replica(self, key: bytes) -> bool:
        return isinstance(self.remote.get(key), ReplicaPeer)

    def detach(self, key: bytes) -> None:
        self.calls.append(("detach", key))
        del self.remote[key]

    async def enter(self, anchor: str, room: bytes) -> bytes:
        self.calls.append(("enter", anchor, room))
        key = room_key(anchor, room)
        self.remote[key] = anchor
        self.joined_keys.add(key)
        return key

    async def enter_at(self, key: bytes, anchor: str, room: bytes, peer: ReplicaPeer) -> bytes:
        self.calls.append(("enter_at", key, anchor, room, peer))
        self.remote[key] = peer
        self.joined_keys.add(key)
        return key


def _pair() -> tuple[RoomPlacement, RoomPlacement, Clock]:
    store, clock = MemoryStore(), Clock()
    x = RoomPlacement(store, X, domain=DOMAIN, now_ms=clock)
    y = RoomPlacement(store, Y, domain=DOMAIN, now_ms=clock)
    return x, y, clock


def _as_rooms(upstream: Upstream) -> LinkRooms:
    return cast(LinkRooms, upstream)


async def test_the_first_claim_holds_the_room_and_the_other_joins_it_at_the_holder() -> None:
    x, y, clock = _pair()
    await x.port.announce_media(X, "10.0.0.7", 7481, clock.now, MEDIA_TTL_MS)
    here, there = Upstream(), Upstream()
    live: set[bytes] = set()
    assert await x.place(_as_rooms(here), live.__contains__, DOMAIN, ROOM) == ROOM
    assert x.held == {ROOM}
    assert here.calls == []
    live.add(ROOM)
    assert await y.place(_as_rooms(there), live.__contains__, DOMAIN, ROOM) == ROOM
    peer = ReplicaPeer(X, "10.0.0.7", 7481)
    assert there.calls == [("enter_at", ROOM, DOMAIN, ROOM, peer)]
    assert y.held == set()
    # settled: a second join places nothing
    assert await y.place(_as_rooms(there), live.__contains__, DOMAIN, ROOM) == ROOM
    assert len(there.calls) == 1


async def test_a_room_of_another_domain_is_held_under_its_local_key_and_joined_there() -> None:
    x, _, _ = _pair()
    here = Upstream()
    key = await x.place(_as_rooms(here), lambda k: False, "anchor.example", ROOM)
    assert key == room_key("anchor.example", ROOM)
    assert x.held == {key}
    assert here.calls == [("enter", "anchor.example", ROOM)]


async def test_an_unannounced_holder_is_unreachable() -> None:
    x, y, _ = _pair()
    assert await x.claim(ROOM) is None
    with pytest.raises(NodeError) as refused:
        await y.place(_as_rooms(Upstream()), lambda k: False, DOMAIN, ROOM)
    assert refused.value.code == CALL_UNREACHABLE


async def test_a_crashed_holders_room_is_taken_over_after_its_hold_expires() -> None:
    x, y, clock = _pair()
    await x.port.announce_media(X, "10.0.0.7", 7481, clock.now, MEDIA_TTL_MS)
    assert await x.claim(ROOM) is None
    there = Upstream()
    await y.place(_as_rooms(there), lambda k: True, DOMAIN, ROOM)
    there.joined_keys.clear()  # the link to x went: an orphan
    clock.now += ROOM_TTL_MS  # x renewed nothing
    assert await y.place(_as_rooms(there), lambda k: True, DOMAIN, ROOM) == ROOM
    assert there.calls[-1] == ("detach", ROOM)
    assert y.held == {ROOM}
    await x.renew(lambda k: True)  # x comes back: its hold is gone
    assert x.lost == 1
    assert x.held == set()


async def test_renewal_keeps_live_rooms_and_releases_the_others() -> None:
    x, y, clock = _pair()
    other = bytes(16)
    assert await x.claim(ROOM) is None
    assert await x.claim(other) is None
    clock.now += ROOM_TTL_MS - 1
    await x.renew(lambda k: k == ROOM)
    assert x.held == {ROOM}
    clock.now += ROOM_TTL_MS - 1
    assert await y.claim(ROOM) == X  # renewed
    assert await y.claim(other) is None  # released
    x.ended(ROOM)
    await x.release_ended()
    assert await y.claim(ROOM) is None


async def test_the_announcement_is_renewed_and_withdrawn_when_cancelled() -> None:
    x, _, clock = _pair()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda **kw: x.announce("10.0.0.7", 7481, interval=0.01, **kw))
        assert await x.claim(ROOM) is None
        found = await x.port.media_address(X, clock.now)
        assert found is not None
        assert (found.address, found.port) == ("10.0.0.7", 7481)
        nursery.cancel_scope.cancel()
    assert await x.port.media_address(X, clock.now) is None
    assert await x.port.room_holder(ROOM, clock.now) is None


# --- the cascade's rules for a room joined by another replica ------------------------


class Rooms:
    def __init__(self) -> None:
        self.cores: dict[bytes, Sfu] = {}

    def core(self, key: bytes) -> Sfu:
        return self.cores.setdefault(key, Sfu(T0))

    def anchored(self, room: bytes, link: object) -> bool:
        return link == "replica-link"


def test_a_room_joined_by_another_replica_is_hosted_here() -> None:
    cascade = Cascade(Rooms())
    key = room_key("anchor.example", ROOM)
    cascade.join("upstream", key, ROOM)  # this replica's local room, joining its anchor
    assert cascade.linked(key)
    assert not cascade.hosting(key)
    step = cascade.receive("replica-link", RoomJoin(key))
    assert step.sends[0].message == RoomJoined(key)
    assert cascade.hosting(key)
    refused = cascade.receive("domain-link", RoomJoin(key))
    assert isinstance(refused.sends[0].message, RoomRefused)


# --- where the other replicas reach this one -------------------------------------------


@pytest.mark.parametrize(
    ("udp", "configured", "expected"),
    [
        ("127.0.0.1:0", "", "127.0.0.1"),
        ("10.1.2.3:7481", "", "10.1.2.3"),
        (WILDCARD + ":7481", "", None),
        ("[::]:7481", "", None),
        ("localhost:7481", "", None),
        (WILDCARD + ":7481", "10.0.0.7", "10.0.0.7"),
        ("[::]:7481", "fd00::7", "fd00::7"),
        ("", "10.0.0.7", None),
    ],
)
def test_the_internal_media_host(udp: str, configured: str, expected: str | None) -> None:
    config = Config(domain=DOMAIN, data_dir="d", udp_listen=udp, media_internal_address=configured)
    assert config.media_internal_host() == expected


@pytest.mark.parametrize("bad", [WILDCARD, "::", "224.0.0.1", "node-1.internal"])
def test_an_internal_address_that_is_no_unicast_ip_is_refused(bad: str) -> None:
    assert unicast_ip(bad) is None
    env = {"SEALRELAY_MEDIA_INTERNAL_ADDRESS": bad}
    with pytest.raises(ConfigError, match="media_internal_address"):
        load_config(env=env, overrides={"domain": DOMAIN, "data_dir": "d"})


@dataclass
class Joined:
    """A fake of ``LinkRooms`` as ``RoomPlacement.check_holders`` uses it."""

    rooms: dict[bytes, bytes]
    let_go_of: list[bytes] = field(default_factory=list)

    def at_replicas(self) -> list[tuple[bytes, bytes]]:
        return sorted(self.rooms.items())

    def let_go(self, key: bytes) -> None:
        self.let_go_of.append(key)


async def test_a_room_whose_holder_went_is_let_go_of_and_placed_again() -> None:
    x, y, clock = _pair()
    assert await x.claim(ROOM) is None
    joined = Joined({ROOM: X})
    await y.check_holders(cast(LinkRooms, joined))
    assert joined.let_go_of == []  # x still holds it
    clock.now += ROOM_TTL_MS  # x crashed: its hold expires
    await y.check_holders(cast(LinkRooms, joined))
    assert joined.let_go_of == [ROOM]
    assert y.moved == 1


def test_leaving_an_upstream_ends_the_room_there_and_takes_its_senders_out() -> None:
    rooms = Rooms()
    cascade = Cascade(rooms)
    cascade.join("upstream", ROOM, ROOM)
    cascade.receive("upstream", RoomJoined(ROOM))
    assert cascade.joined("upstream", ROOM)
    step = cascade.leave("upstream", ROOM)
    assert step.sends[0].message == RoomEnd(ROOM, True)
    assert step.emptied == [ROOM]
    assert not cascade.linked(ROOM)
    assert cascade.leave("upstream", ROOM).sends == []


@dataclass(eq=False)
class ReplicaLink:
    """A link from another replica of the domain, as the shell tells its kind."""

    kind: str = "replica"


async def test_a_replica_may_join_a_local_room_held_here_a_domain_may_not() -> None:
    world = World()
    await _seat(world.a, "a0", A, world)
    await _seat(world.b, "b0", A, world)
    key = room_key(A, SHELL_ROOM)
    assert world.b.remote.is_remote(key)
    assert world.b.anchored(key, ReplicaLink())  # b holds its local room of a's room
    assert not world.b.anchored(key, world.at_b)  # a domain link: never a third domain's
    assert world.a.anchored(SHELL_ROOM, world.at_a)
    assert not world.b.anchored(os.urandom(16), ReplicaLink())  # no such room here


async def test_a_placement_the_holder_refuses_is_tried_once_more() -> None:
    x, y, clock = _pair()
    await x.port.announce_media(X, "10.0.0.7", 7481, clock.now, MEDIA_TTL_MS)
    assert await x.claim(ROOM) is None
    refusals = [NodeError(MEETING_NO_ROOM, "not yet"), NodeError(MEETING_NO_ROOM, "again")]

    class Refusing(Upstream):
        async def enter_at(self, key: bytes, anchor: str, room: bytes, peer: ReplicaPeer) -> bytes:
            if refusals:
                raise refusals.pop(0)
            return await super().enter_at(key, anchor, room, peer)

    with pytest.raises(NodeError):
        await y.place(_as_rooms(Refusing()), lambda k: False, DOMAIN, ROOM)
    assert refusals == []  # tried twice
    refusals.append(NodeError(MEETING_NO_ROOM, "once"))
    there = Refusing()
    assert await y.place(_as_rooms(there), lambda k: False, DOMAIN, ROOM) == ROOM
    assert there.calls == [("enter_at", ROOM, DOMAIN, ROOM, ReplicaPeer(X, "10.0.0.7", 7481))]
