"""Call legs on the client protocol (``wire.relay``; DESIGN section 9; issue 17, the
rendezvous): a client asks its own node, over its authenticated ``/v1/client`` WebSocket,
for the leg its media goes through. Import these frames from ``wire.relay``.

Rendezvous (no node sees both parties)::

    callee -> its node    LegAllocate{id}                 accepting an offer
    node -> callee        LegGrant{id, leg_id, leg_secret}
        the callee sends LegRef{its domain, leg_id} inside the end-to-end CallAnswer
    caller -> its node    LegBridge{id, leg: LegRef}      a leg joined to the callee's leg:
                                                          on the same node a local join,
                                                          otherwise over the node-to-node
                                                          media link to ``leg.domain``
    node -> caller        LegGrant{id, leg_id, leg_secret}  or Error call.* / fed.*
    either -> its node    LegHangUp{id, leg_id}           -> Ok; ends the leg and its bridge

Each client then binds a media connection to its leg with ``leg_secret``: a QUIC
connection to the node's media port (``wire.media_control.MediaBind``), or, when UDP is
blocked, this WebSocket with :class:`LegAttach` -> :class:`LegAttached`. After a
``LegAttached`` both sides may send media datagrams (``wire.media``) on the WebSocket as
binary messages of their own: a datagram's first byte is ``0x11`` (header version 1, type
media), which no frame of this protocol starts with (a frame is a 3-element msgpack array,
``0x93``). The node pushes :class:`LegEnded` when a leg of this connection's account ends
(its peer hung up, it expired, the far node went).

The leg secret is a bearer credential for binding media to the leg: the reprs here hide
it, and the node keeps only its SHA-256 (``node.calls.legs``).
"""

from __future__ import annotations

from typing import Final

from wire.calls import LegId, LegRef
from wire.media import TYPE_MEDIA, TYPE_SIGNATURE, VERSION
from wire.relay_common import Code, RequestId
from wire.schema import message
from wire.types import U32, Bytes32

MEDIA_MESSAGE_BYTE: Final = VERSION << 4 | TYPE_MEDIA
"""The first byte of a media datagram (``wire.media``: version 1, type media, ``0x11``),
and so of a binary WebSocket message that carries one; a frame starts with ``0x93``."""
SIGNATURE_MESSAGE_BYTE: Final = VERSION << 4 | TYPE_SIGNATURE
"""The first byte of a meeting's signature datagram (``wire.media``: type signature,
``0x12``), which travels as media does."""
_DATAGRAM_BYTES: Final = frozenset((MEDIA_MESSAGE_BYTE, SIGNATURE_MESSAGE_BYTE))


def is_media_message(data: bytes) -> bool:
    """Whether the binary WebSocket message ``data`` is a media (or signature) datagram
    rather than a frame (by its first byte only; the datagram's header is checked where it
    is read)."""
    return bool(data) and data[0] in _DATAGRAM_BYTES


@message("relay.leg_allocate")
class LegAllocate:
    """A fresh leg for an incoming call this account accepts (the callee's side)."""

    id: RequestId


@message("relay.leg_bridge")
class LegBridge:
    """A fresh leg joined to ``leg``, the other party's leg on its node (the caller's
    side)."""

    id: RequestId
    leg: LegRef


@message("relay.leg_grant")
class LegGrant:
    """The leg allocated for ``LegAllocate`` or ``LegBridge``: its id, and the secret that
    binds a media connection to it."""

    id: RequestId
    leg_id: LegId
    leg_secret: Bytes32

    def __repr__(self) -> str:
        """Everything but the secret, so that a logged grant shows no credential."""
        return f"LegGrant(id={self.id}, leg_id={self.leg_id.hex()})"


@message("relay.leg_hang_up")
class LegHangUp:
    """End this account's leg ``leg_id`` and the leg bridged to it; answered ``Ok``."""

    id: RequestId
    leg_id: LegId


@message("relay.leg_attach")
class LegAttach:
    """Carry the media of leg ``leg_id`` on this WebSocket (the fallback when UDP is
    blocked), bound by its secret as ``wire.media_control.MediaBind`` binds a QUIC
    connection."""

    id: RequestId
    leg_id: LegId
    leg_secret: Bytes32

    def __repr__(self) -> str:
        """Everything but the secret."""
        return f"LegAttach(id={self.id}, leg_id={self.leg_id.hex()})"


@message("relay.leg_attached")
class LegAttached:
    """This WebSocket carries leg ``leg_id``; its datagrams name the sender ``sender``."""

    id: RequestId
    leg_id: LegId
    sender: U32


@message("relay.leg_ended")
class LegEnded:
    """Pushed: the leg ``leg_id`` of this account ended; ``reason`` is a stable code
    (``call.hang_up``, ``call.peer_ended``, ``call.expired``, ``call.owner_gone``)."""

    leg_id: LegId
    reason: Code


__all__ = [
    "MEDIA_MESSAGE_BYTE",
    "LegAllocate",
    "LegAttach",
    "LegAttached",
    "LegBridge",
    "LegEnded",
    "LegGrant",
    "LegHangUp",
    "LegRef",
    "is_media_message",
]
