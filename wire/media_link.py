"""Control messages of a node-to-node media link (DESIGN section 9; issue 17, "the media
path" and "node-to-node links authenticate both ends").

A node that bridges one of its client legs to a leg of a peer domain opens (or reuses) one
QUIC connection to that domain's media port (``transport``; the peer's certificate key is
pinned from its signed key document, ``trust.media``) and authenticates itself on the
control stream by its server signing key (``trust.peerlink``)::

    connecting node -> accepting node   LinkHello{origin, target}    the first control message
    accepting -> connecting             LinkChallenge{challenge}     (``wire.server``)
    connecting -> accepting             LinkProof{origin, key_id, signature}  (``wire.server``)
    accepting -> connecting             LinkReady{}  or  LinkRejected{code, message}
                                                                     (then the accepter closes)

Then either node may bridge over the link, as many calls as it likes. A *channel* is the
32-bit sender id one node chose for a bridge: the other node puts it in the clear header
of every datagram it sends on that bridge (``node.calls.core``)::

    A -> B   LinkJoin{leg_id, channel}          join B's leg ``leg_id``; send me its media
                                                under ``channel``
    B -> A   LinkJoined{channel, far_channel}   joined (``channel`` is A's, echoed); send me
                                                the other way under ``far_channel``
          or LinkJoinRefused{channel, code}     ``call.no_leg``, ``call.leg_taken``,
                                                ``call.expired`` (``trust.errors``)
    either   LinkEnd{channel}                   the bridge is over; ``channel`` is the
                                                *receiver's* channel for it

Meetings cascade over the same link (issue 18, "across domains, cascaded";
``node.sfu.cascade``). A participant's node joins the room on the meeting's *anchor* node
(the host's); then each side's forwarding core holds the link as one connection that owns
the far side's senders and receives what the far side needs. ``yours`` says whose room a
message is about: true when the room is anchored at the message's receiver::

    member -> anchor   RoomJoin{room}                  join the anchor's room ``room``
    anchor -> member   RoomJoined{room}                joined
                    or RoomRefused{room, code}         ``meeting.no_room``
    either             SendersAdded{room, yours, senders}   senders of this side (sender
                                                       id, simulcast layers), owned by
                                                       the link on the other side
    either             SendersRemoved{room, yours, senders} those senders went
    either             RoomLayer{room, yours, changes}  the receiver of this message
                                                       should send (or stop sending) each
                                                       (sender, layer) over the link
    either             RoomKeyframe{room, yours, tracks}  a keyframe of each, please
    either             RoomEnd{room, yours}            the room is over for the sender

A QUIC bind that the UDP load balancer sent to another replica than its leg's is relayed
over the replica link between them (cluster mode; ``node.calls.relayed``, docs/kubernetes.md
"The leg's replica"). The replica the client reached (the *front*) checked the leg secret
against the ``CallLegs`` record before sending anything; ``relay`` is the 32-bit id the
front chose for that client connection, unique on the link (only the dialling side of a
link opens relays on it)::

    front -> holder    RelayBind{relay, leg_id, leg_secret}   serve this client connection:
                                                    its ``MediaBind`` was these
    either             RelayControl{relay, message}  one control message of the client
                                                    connection, in its direction
    either             RelayClose{relay, code, reason}  the relayed connection is over: the
                                                    holder closed it with ``code``, or the
                                                    client went
    either             LinkPing{}                   a replica link's keep-alive

A relayed datagram travels on the link in an envelope: :data:`RELAYED_DATAGRAM` (a first
byte no media datagram has), the relay id (4 bytes, big-endian), then the client's
datagram byte for byte (:func:`wrap_relayed`, :func:`unwrap_relayed`).

A sender id is the 32-bit id the node of its participant drew; a datagram on the link
carries it as on a client's connection. A link carries only leg ids of the accepting side,
room ids, sender ids, layers, channels and codes: never an account address, and nothing
that names a third domain. :func:`decode_link_message` raises only
:class:`~wire.errors.WireError`; every message is bounded by :data:`MAX_LINK_CONTROL`.
The QUIC application close codes a node uses on a link are here too.
"""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

from wire.calls import LegId
from wire.codec import decode
from wire.relay_common import Code, Domain
from wire.relay_meetings import MAX_LAYERS, MeetingLayerSpec, RoomId
from wire.schema import message
from wire.server import LinkChallenge, LinkProof
from wire.types import U8, U32, Bytes32, MaxLen

MAX_LINK_CONTROL: Final = 16 * 1024
"""Largest control message read on a link (a ``LinkProof`` with an ML-DSA-87 + P-384
signature is under 5 KiB); ``trust.peerlink`` reads challenges and proofs under it too."""
MAX_REJECT_MESSAGE: Final = 512
MAX_ANNOUNCED: Final = 32
"""Most senders one ``SendersAdded`` or ``SendersRemoved`` names (a node splits longer
lists; 32 senders with three layers each take under half of :data:`MAX_LINK_CONTROL`)."""
MAX_CHANGES: Final = 64
"""Most layer changes or keyframe requests one ``RoomLayer`` or ``RoomKeyframe`` carries (a
node gathers those of a tick into as few messages as this allows)."""

CLOSE_LINK_REJECTED: Final = 0x211
"""The link was refused; the ``LinkRejected`` sent before the close says why."""
CLOSE_LINK_PROTOCOL: Final = 0x212
"""A control message on the link was malformed, or not allowed at that point."""
CLOSE_LINK_TIMEOUT: Final = 0x213
"""A handshake step did not arrive in time."""
CLOSE_LINK_DONE: Final = 0x214
"""The node closed the link (it stopped, or the link was replaced)."""
CLOSE_LINK_SILENT: Final = 0x215
"""A replica link on which nothing arrived for the keep-alive's timeout."""
CLOSE_RELAY_GONE: Final = 0x216
"""A relayed client connection whose replica link went (the leg's replica, or the link to
it, is gone): bind again."""

MAX_RELAYED_CONTROL: Final = 8 * 1024
"""Largest client control message relayed (a ``MediaVideo``, ``MediaLayer`` or
``MediaKeyframe`` is far smaller); a bigger one closes the relayed connection."""
RELAYED_DATAGRAM: Final = 0x1F
"""First byte of a relayed datagram's envelope on a link: header version 1, type 15, which
no media datagram has (``wire.media``)."""
RELAY_ENVELOPE: Final = 5
"""Bytes an envelope adds to a client's datagram."""


@message("media_link.hello")
class LinkHello:
    """The connecting node's first control message: who it says it is (``origin``, proved
    by the ``LinkProof`` that follows) and which domain it means to reach (``target``)."""

    origin: Domain
    target: Domain


@message("media_link.ready")
class LinkReady:
    """The accepting node checked the proof: the link is up."""


@message("media_link.rejected")
class LinkRejected:
    """The accepting node refused the link with the stable ``code`` (``fed.auth``,
    ``fed.policy``, ``fed.key_document``...); it closes the connection next."""

    code: Code
    message: Annotated[str, MaxLen(MAX_REJECT_MESSAGE)]


@message("media_link.join")
class LinkJoin:
    """Join the receiver's client leg ``leg_id``; datagrams to the sender carry ``channel``."""

    leg_id: LegId
    channel: U32


@message("media_link.joined")
class LinkJoined:
    """The bridge the sender of a ``LinkJoin`` named ``channel`` is joined; datagrams to
    the sender of this answer carry ``far_channel``."""

    channel: U32
    far_channel: U32


@message("media_link.join_refused")
class LinkJoinRefused:
    """The ``LinkJoin`` that named ``channel`` is refused with the stable ``code``."""

    channel: U32
    code: Code


@message("media_link.end")
class LinkEnd:
    """The bridge the receiver knows as ``channel`` is over (a hang-up, an expiry, the
    sender's leg ended)."""

    channel: U32


@message("media_link.room_join")
class RoomJoin:
    """Join the receiver's meeting room ``room`` (the receiver is its anchor)."""

    room: RoomId


@message("media_link.room_joined")
class RoomJoined:
    """The ``RoomJoin`` of ``room`` is accepted: senders follow both ways."""

    room: RoomId


@message("media_link.room_refused")
class RoomRefused:
    """The ``RoomJoin`` of ``room`` is refused with the stable ``code``."""

    room: RoomId
    code: Code


@message("media_link.link_sender")
class LinkSender:
    """One sender announced on a link: its id and simulcast layers (lowest first)."""

    sender: U32
    layers: Annotated[tuple[MeetingLayerSpec, ...], MaxLen(MAX_LAYERS)]


@message("media_link.senders_added")
class SendersAdded:
    """Senders of the message's sender side joined ``room``."""

    room: RoomId
    yours: bool
    senders: Annotated[tuple[LinkSender, ...], MaxLen(MAX_ANNOUNCED)]


@message("media_link.senders_removed")
class SendersRemoved:
    """Senders announced before left ``room``."""

    room: RoomId
    yours: bool
    senders: Annotated[tuple[U32, ...], MaxLen(MAX_ANNOUNCED)]


@message("media_link.layer_change")
class LayerChange:
    """Send (``active``) or stop sending ``layer`` of ``sender`` over the link: somebody on
    the message's sender side needs it, or nobody does any more."""

    sender: U32
    layer: U8
    active: bool


@message("media_link.room_layer")
class RoomLayer:
    """Layer changes for the senders of ``room`` on the message's receiver side."""

    room: RoomId
    yours: bool
    changes: Annotated[tuple[LayerChange, ...], MaxLen(MAX_CHANGES)]


@message("media_link.track")
class LinkTrack:
    """Simulcast ``layer`` of ``sender``."""

    sender: U32
    layer: U8


@message("media_link.room_keyframe")
class RoomKeyframe:
    """A keyframe of each of ``tracks``, please (a receiver waits to switch to it)."""

    room: RoomId
    yours: bool
    tracks: Annotated[tuple[LinkTrack, ...], MaxLen(MAX_CHANGES)]


@message("media_link.room_end")
class RoomEnd:
    """The room is over for the message's sender side (its last participant left, or the
    anchor ended it): what it owned there goes."""

    room: RoomId
    yours: bool


@message("media_link.relay_bind")
class RelayBind:
    """Serve the client connection the sender relays as ``relay``: its ``MediaBind`` named
    the receiver's leg ``leg_id`` with this secret (checked by the sender already)."""

    relay: U32
    leg_id: LegId
    leg_secret: Bytes32

    def __repr__(self) -> str:
        """Everything but the secret."""
        return f"RelayBind(relay={self.relay}, leg_id={self.leg_id.hex()})"


@message("media_link.relay_control")
class RelayControl:
    """One control message of the relayed client connection ``relay``, in the direction of
    the link message."""

    relay: U32
    message: Annotated[bytes, MaxLen(MAX_RELAYED_CONTROL)]


@message("media_link.relay_close")
class RelayClose:
    """The relayed connection ``relay`` is over: closed with the application ``code`` and
    ``reason`` by the leg's replica (the front closes the client's with them), or the client
    went (the holder ends its side)."""

    relay: U32
    code: U32
    reason: Annotated[str, MaxLen(MAX_REJECT_MESSAGE)]


@message("media_link.ping")
class LinkPing:
    """A replica link's keep-alive: nothing to answer (each side sends its own)."""


LinkBridgeMessage: TypeAlias = LinkJoin | LinkJoined | LinkJoinRefused | LinkEnd
LinkRoomMessage: TypeAlias = (
    RoomJoin
    | RoomJoined
    | RoomRefused
    | SendersAdded
    | SendersRemoved
    | RoomLayer
    | RoomKeyframe
    | RoomEnd
)
LinkRelayMessage: TypeAlias = RelayBind | RelayControl | RelayClose | LinkPing
LinkTraffic: TypeAlias = LinkBridgeMessage | LinkRoomMessage | LinkRelayMessage
LinkMessage: TypeAlias = (
    LinkHello | LinkChallenge | LinkProof | LinkReady | LinkRejected | LinkTraffic
)

BRIDGE_MESSAGES: Final = (LinkJoin, LinkJoined, LinkJoinRefused, LinkEnd)
ROOM_MESSAGES: Final = (
    RoomJoin,
    RoomJoined,
    RoomRefused,
    SendersAdded,
    SendersRemoved,
    RoomLayer,
    RoomKeyframe,
    RoomEnd,
)
RELAY_MESSAGES: Final = (RelayBind, RelayControl, RelayClose, LinkPing)
TRAFFIC_MESSAGES: Final = (*BRIDGE_MESSAGES, *ROOM_MESSAGES, *RELAY_MESSAGES)
LINK_MESSAGES: Final = (
    LinkHello,
    LinkChallenge,
    LinkProof,
    LinkReady,
    LinkRejected,
    *TRAFFIC_MESSAGES,
)


def decode_link_message(data: bytes) -> LinkMessage:
    """Any link control message in ``data``; :class:`~wire.errors.WireError` otherwise."""
    found: LinkMessage = decode(data, LINK_MESSAGES, max_size=MAX_LINK_CONTROL)  # type: ignore[assignment]
    return found


def decode_hello(data: bytes) -> LinkHello:
    """The ``LinkHello`` in ``data``; :class:`~wire.errors.WireError` otherwise."""
    return decode(data, LinkHello, max_size=MAX_LINK_CONTROL)


def decode_bridge_message(data: bytes) -> LinkBridgeMessage:
    """A message of an established link (join, joined, refused, end);
    :class:`~wire.errors.WireError` for anything else, a handshake message included."""
    found: LinkBridgeMessage = decode(data, BRIDGE_MESSAGES, max_size=MAX_LINK_CONTROL)  # type: ignore[assignment]
    return found


def decode_link_traffic(data: bytes) -> LinkTraffic:
    """A message of an established link: a bridge message or a room message;
    :class:`~wire.errors.WireError` for anything else, a handshake message included."""
    found: LinkTraffic = decode(data, TRAFFIC_MESSAGES, max_size=MAX_LINK_CONTROL)  # type: ignore[assignment]
    return found


def decode_handshake_answer(data: bytes) -> LinkReady | LinkRejected:
    """The accepting node's answer to a proof; :class:`~wire.errors.WireError` otherwise."""
    answer: LinkReady | LinkRejected = decode(
        data, (LinkReady, LinkRejected), max_size=MAX_LINK_CONTROL
    )
    return answer


def wrap_relayed(relay: int, datagram: bytes) -> bytes:
    """``datagram`` of the relayed connection ``relay`` in its envelope for the link."""
    return bytes((RELAYED_DATAGRAM,)) + relay.to_bytes(4, "big") + datagram


def unwrap_relayed(data: bytes) -> tuple[int, bytes] | None:
    """``(relay, datagram)`` of a relayed datagram's envelope; None if ``data`` is none
    (a media datagram of the link, or too short to be one). Never raises."""
    if len(data) <= RELAY_ENVELOPE or data[0] != RELAYED_DATAGRAM:
        return None
    return int.from_bytes(data[1:RELAY_ENVELOPE], "big"), data[RELAY_ENVELOPE:]


__all__ = [
    "BRIDGE_MESSAGES",
    "CLOSE_LINK_DONE",
    "CLOSE_LINK_PROTOCOL",
    "CLOSE_LINK_REJECTED",
    "CLOSE_LINK_SILENT",
    "CLOSE_LINK_TIMEOUT",
    "CLOSE_RELAY_GONE",
    "LINK_MESSAGES",
    "MAX_ANNOUNCED",
    "MAX_CHANGES",
    "MAX_LINK_CONTROL",
    "MAX_RELAYED_CONTROL",
    "RELAYED_DATAGRAM",
    "RELAY_ENVELOPE",
    "RELAY_MESSAGES",
    "ROOM_MESSAGES",
    "TRAFFIC_MESSAGES",
    "LayerChange",
    "LinkBridgeMessage",
    "LinkEnd",
    "LinkHello",
    "LinkJoin",
    "LinkJoinRefused",
    "LinkJoined",
    "LinkMessage",
    "LinkPing",
    "LinkReady",
    "LinkRejected",
    "LinkRelayMessage",
    "LinkRoomMessage",
    "LinkSender",
    "LinkTrack",
    "LinkTraffic",
    "RelayBind",
    "RelayClose",
    "RelayControl",
    "RoomEnd",
    "RoomJoin",
    "RoomJoined",
    "RoomKeyframe",
    "RoomLayer",
    "RoomRefused",
    "SendersAdded",
    "SendersRemoved",
    "decode_bridge_message",
    "decode_handshake_answer",
    "decode_hello",
    "decode_link_message",
    "decode_link_traffic",
    "unwrap_relayed",
    "wrap_relayed",
]
