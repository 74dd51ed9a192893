"""The bind elsewhere, sans I/O (DESIGN section 9; issue 18, item 4; docs/kubernetes.md
"The leg's replica"): what a replica decides when a client's QUIC ``MediaBind`` names a leg
it does not hold, and the small state of a replica link's keep-alive.

Pure: no trio, no clock, no store (the record, the time and the random draws are passed
in). The trio shell is ``node.calls.relayed``.

In cluster mode the UDP load balancer may send a client's QUIC connection to another
replica than the one that granted its leg (the one serving the client's WebSocket). That
replica (the *front*) reads the leg's ``CallLegs`` record (``node.store.ports``), and
:func:`judge_bind` decides, as the holding replica's own bind would refuse:

- no record (unknown or expired), or a record naming this replica (a leg that ended here):
  ``call.no_leg``;
- a record past its ``expires``: ``call.expired``;
- a secret whose SHA-256 is not the record's (compared in constant time):
  ``call.bad_secret``;
- else :class:`HandOn` to the record's replica, which binds the leg itself (and may still
  refuse: the leg may have ended since its last renewal).

A refusal is decided before anything is sent to another replica: a wrong secret never
causes link traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Final, Protocol

from node.calls.legs import secret_matches
from node.errors import CALL_BAD_SECRET, CALL_EXPIRED, CALL_NO_LEG

RELAY_ID_BYTES: Final = 4
"""Bytes of a relay id (a ``U32`` of ``wire.media_link``)."""
MAX_DRAWS: Final = 16
"""Draws of a fresh relay id before giving up (a link carries few relays; a collision in
2**32 ids is rare)."""


class StoredLeg(Protocol):
    """What the front reads of a leg's record (``node.store.base.LegRecord``)."""

    @property
    def replica(self) -> bytes: ...

    @property
    def secret_hash(self) -> bytes: ...

    @property
    def expires(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HandOn:
    """Relay the client's connection to ``replica``, which holds the leg."""

    replica: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refuse the bind with the stable ``code`` (``MediaRefused``)."""

    code: str
    message: str


def judge_bind(record: StoredLeg | None, secret: bytes, now: int, here: bytes) -> HandOn | Refusal:
    """What the front does with a bind by ``secret`` of the leg ``record`` describes (None:
    the store knows no such live leg), at ``now`` (Unix ms), on the replica ``here``."""
    if record is None or record.replica == here:
        return Refusal(CALL_NO_LEG, "no such call leg")
    if record.expires <= now:
        return Refusal(CALL_EXPIRED, "the call leg expired")
    if not secret_matches(record.secret_hash, secret):
        return Refusal(CALL_BAD_SECRET, "the leg secret does not match")
    return HandOn(record.replica)


def fresh_relay_id(random: Callable[[int], bytes], taken: Container[int]) -> int | None:
    """A relay id not in ``taken`` (None if :data:`MAX_DRAWS` draws all were)."""
    for _ in range(MAX_DRAWS):
        relay = int.from_bytes(random(RELAY_ID_BYTES), "big")
        if relay not in taken:
            return relay
    return None


@dataclass(slots=True)
class Liveness:
    """Whether a replica link's peer is still there: something (a keep-alive, any control
    message, any datagram) must arrive within ``timeout`` seconds (mutable)."""

    timeout: float
    heard: int = -1
    since: float = 0.0

    def check(self, received: int, now: float) -> bool:
        """``received``: the link's count of messages and datagrams received so far, at
        ``now`` (seconds, any monotonic clock). False once it has not moved for
        ``timeout`` seconds."""
        if received != self.heard:
            self.heard, self.since = received, now
            return True
        return now - self.since < self.timeout


__all__ = [
    "MAX_DRAWS",
    "RELAY_ID_BYTES",
    "HandOn",
    "Liveness",
    "Refusal",
    "StoredLeg",
    "fresh_relay_id",
    "judge_bind",
]
