"""The rules of the ``MediaPlacement`` port (DESIGN sections 7 and 9; issue 18, item 4), in
one place: the bounds every backend checks before it writes, and the in-process table the
memory and SQLite backends keep.

Two facts, each until ``now + ttl_ms`` by the caller's clock (Unix ms; a thing whose
``expires`` is at or before ``now`` has expired)::

    replica id -> MediaAddress (address, port)   where the replica's media listener answers
                                                 the other replicas (``announce_media``)
    room id    -> replica id                     the one replica that holds a meeting room
                                                 (``place_room``): first claim wins

Bounds (:class:`~node.store.errors.PlacementInvalid` beyond, with the code in the right
column)::

    room id     exactly ROOM_BYTES (16) bytes (a cascaded room:     placement.room
                its local key)
    replica id  1 to MAX_REPLICA_BYTES (32) bytes                   placement.replica
    address     a literal IPv4 or IPv6 address, not unspecified,    placement.address
                multicast or scoped; kept in its canonical form
                (an IPv4-mapped IPv6 address as the IPv4 address)
    port        1 to 65535                                          placement.port
    times       ints, 0 to MAX_TIME_MS (2**53 - 1, exact in the     placement.time
                numbers of Redis' Lua)
    TTLs        1 to MAX_TTL_MS (one hour)                          placement.time

:class:`PlacementTable` is a pure object (no clock, no I/O): the memory backend's whole
implementation, and the SQLite backend's, whose node is one process (a placement names a
live process's sockets, so it has nothing to keep across a restart).
"""

from __future__ import annotations

import ipaddress
from typing import Final

from node.store.base import MediaAddress
from node.store.errors import (
    PLACEMENT_ADDRESS,
    PLACEMENT_PORT,
    PLACEMENT_REPLICA,
    PLACEMENT_ROOM,
    PLACEMENT_TIME,
    PlacementInvalid,
)

ROOM_BYTES: Final = 16
MAX_REPLICA_BYTES: Final = 32
MAX_PORT: Final = 65_535
MAX_TIME_MS: Final = 2**53 - 1
MAX_TTL_MS: Final = 3_600_000
PRUNE_FLOOR: Final = 1024
"""A table prunes its expired entries when it has grown to twice its size after the last
prune (and to at least this many): amortised constant time per write."""


def check_room(room: bytes) -> bytes:
    """``room`` if it is a room id of :data:`ROOM_BYTES` bytes."""
    if not isinstance(room, bytes) or len(room) != ROOM_BYTES:
        raise PlacementInvalid(PLACEMENT_ROOM, f"a room id is {ROOM_BYTES} bytes")
    return room


def check_replica(replica: bytes) -> bytes:
    """``replica`` if it is a replica id of 1 to :data:`MAX_REPLICA_BYTES` bytes."""
    if not isinstance(replica, bytes) or not 0 < len(replica) <= MAX_REPLICA_BYTES:
        raise PlacementInvalid(PLACEMENT_REPLICA, f"a replica id is 1 to {MAX_REPLICA_BYTES} bytes")
    return replica


def check_time(value: int, what: str) -> int:
    """``value`` if it is an int time within 0..:data:`MAX_TIME_MS`."""
    if type(value) is not int or not 0 <= value <= MAX_TIME_MS:
        raise PlacementInvalid(PLACEMENT_TIME, f"{what} is an int of 0 to 2**53-1 ms")
    return value


def expiry(now: int, ttl_ms: int) -> int:
    """When an announcement or a hold made at ``now`` for ``ttl_ms`` ends."""
    check_time(now, "now")
    if type(ttl_ms) is not int or not 0 < ttl_ms <= MAX_TTL_MS:
        raise PlacementInvalid(PLACEMENT_TIME, f"a TTL is 1 to {MAX_TTL_MS} ms")
    return check_time(now + ttl_ms, "the end of a TTL")


def media_address(address: str, port: int) -> MediaAddress:
    """The checked, canonical :class:`MediaAddress` of ``address`` and ``port``."""
    if type(port) is not int or not 0 < port <= MAX_PORT:
        raise PlacementInvalid(PLACEMENT_PORT, f"a media port is 1 to {MAX_PORT}")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise PlacementInvalid(PLACEMENT_ADDRESS, "not a literal IP address") from None
    if ip.is_unspecified or ip.is_multicast:
        raise PlacementInvalid(PLACEMENT_ADDRESS, "an unspecified or multicast address")
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            raise PlacementInvalid(PLACEMENT_ADDRESS, "a scoped IPv6 address")
        ip = ip.ipv4_mapped or ip  # ::ffff:10.0.0.7 is 10.0.0.7
    return MediaAddress(str(ip), port)


class PlacementTable:
    """The two facts in dictionaries, with the port's rules; every argument checked."""

    def __init__(self) -> None:
        self._media: dict[bytes, tuple[MediaAddress, int]] = {}
        self._rooms: dict[bytes, tuple[bytes, int]] = {}
        self._prune_at = PRUNE_FLOOR
        self.closed = False

    def announce(self, replica: bytes, address: str, port: int, now: int, ttl_ms: int) -> None:
        found, expires = media_address(address, port), expiry(now, ttl_ms)
        self._media[check_replica(replica)] = (found, expires)

    def lookup(self, replica: bytes, now: int) -> MediaAddress | None:
        found, now = self._media.get(check_replica(replica)), check_time(now, "now")
        return found[0] if found is not None and found[1] > now else None

    def withdraw(self, replica: bytes) -> bool:
        return self._media.pop(check_replica(replica), None) is not None

    def place(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bytes:
        expires, replica = expiry(now, ttl_ms), check_replica(replica)
        holder = self.holder(room, now)
        if holder is not None and holder != replica:
            return holder
        self._rooms[room] = (replica, expires)
        self._prune(now)
        return replica

    def renew(self, room: bytes, replica: bytes, now: int, ttl_ms: int) -> bool:
        expires, replica = expiry(now, ttl_ms), check_replica(replica)
        if self.holder(room, now) != replica:
            return False
        self._rooms[room] = (replica, expires)
        return True

    def release(self, room: bytes, replica: bytes) -> bool:
        room, replica = check_room(room), check_replica(replica)
        found = self._rooms.get(room)
        if found is None or found[0] != replica:
            return False
        del self._rooms[room]
        return True

    def holder(self, room: bytes, now: int) -> bytes | None:
        found, now = self._rooms.get(check_room(room)), check_time(now, "now")
        return found[0] if found is not None and found[1] > now else None

    def _prune(self, now: int) -> None:
        """Drop the expired holds once the table has doubled since the last prune (the
        media addresses are one per replica, and withdrawn when it stops)."""
        if len(self._rooms) < self._prune_at:
            return
        for room in [room for room, (_, expires) in self._rooms.items() if expires <= now]:
            del self._rooms[room]
        self._prune_at = max(PRUNE_FLOOR, 2 * len(self._rooms))
