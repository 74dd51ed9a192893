"""A call leg: one end of a call on this node (DESIGN section 9; issue 17, "the media path").

A *leg* is what a node keeps for one party of a call. A *client leg* belongs to one of the
node's accounts (its owner is that account's connection); a *remote leg* belongs to a peer
domain's node-to-node link (its owner is the link, which knows only the peer's domain). Two
legs joined by a *bridge* forward each other's media datagrams.

A client leg is allocated with a random :data:`LEG_ID_BYTES`-byte id and a random
:data:`LEG_SECRET_BYTES`-byte secret, both from the injected randomness: the id is opaque
(it is not derived from the account, the call or anything else the node knows), and the
secret is the bearer credential that binds a media connection (QUIC, or the WebSocket
fallback) to the leg. The node keeps only SHA-256 of the secret (:func:`secret_hash`) and
compares in constant time (:func:`secret_matches`), as it keeps token verifiers.

This module holds the values the node hands out and the leg's state; the decisions are
:class:`node.calls.core.CallRelay`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

LEG_ID_BYTES: Final = 16
"""Bytes of a leg id (random, opaque; the ``leg_id`` of a LegRef in a CallAnswer)."""
LEG_SECRET_BYTES: Final = 32
"""Bytes of a leg secret (the bearer that binds a media connection to its leg)."""
ALLOCATION_TIMEOUT_MS: Final = 60_000
"""A leg with no media connection bound expires this long after its allocation, or after
its connection went (a client has that long to reconnect, or to migrate to the fallback)."""
IDLE_TIMEOUT_MS: Final = 30_000
"""A bound leg expires this long after the last datagram it sent, or its binding."""

_SENDER: Final = struct.Struct(">I")

Owner = Hashable
"""An opaque local reference to who holds a leg: an account's connection for a client leg,
a peer domain's link for a remote leg. The core only compares owners."""
Conn = Hashable
"""An opaque local reference to a media connection (a QUIC connection, a client's
WebSocket, or a node-to-node link): where datagrams come from and go to."""


@dataclass(frozen=True, slots=True)
class Leg:
    """A newly allocated client leg, as the node answers the client that asked for it.

    ``leg_secret`` is given out once, here; the node keeps only its hash."""

    leg_id: bytes
    leg_secret: bytes = field(repr=False)
    expires: int


@dataclass(frozen=True, slots=True)
class Bound:
    """A media connection bound to a leg: the ``sender`` id that the connection must put
    in the clear header of every datagram it sends on this leg (``wire.media``)."""

    leg_id: bytes
    sender: int


@dataclass(slots=True, eq=False)
class LegState:
    """What the core keeps about one leg (mutable; only :class:`~node.calls.core.CallRelay`
    changes it).

    ``sender`` is the stream sender id the node expects on datagrams *from* this leg's
    connection (assigned at bind, or when a remote leg is set up); ``out_prefix`` is, for
    a remote leg, the sender id the peer node expects on datagrams *to* it, packed (b"" for
    a client leg: its datagrams leave as they came). A remote leg's ``domain`` is all the
    node knows of the far side: never an account address.
    """

    leg_id: bytes
    owner: Owner
    secret_hash: bytes
    deadline: int
    remote: bool = False
    domain: str = ""
    conn: Conn | None = None
    sender: int | None = None
    out_prefix: bytes = b""
    peer: LegState | None = None
    pending: bool = False
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0


def secret_hash(secret: bytes) -> bytes:
    """SHA-256 of a leg secret: what the node keeps instead of the secret."""
    return hashlib.sha256(secret).digest()


def secret_matches(stored_hash: bytes, presented: bytes) -> bool:
    """Whether ``presented`` is the secret whose hash is ``stored_hash`` (constant time)."""
    return hmac.compare_digest(stored_hash, secret_hash(presented))


def pack_sender(sender: int) -> bytes:
    """The four bytes of a sender id in the clear header (``wire.media``, bytes 3-6)."""
    return _SENDER.pack(sender)
