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
from wire.types import U8, U32, MaxLen

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
LinkTraffic: TypeAlias = LinkBridgeMessage | LinkRoomMessage
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
TRAFFIC_MESSAGES: Final = (*BRIDGE_MESSAGES, *ROOM_MESSAGES)
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


__all__ = [
    "BRIDGE_MESSAGES",
    "CLOSE_LINK_DONE",
    "CLOSE_LINK_PROTOCOL",
    "CLOSE_LINK_REJECTED",
    "CLOSE_LINK_TIMEOUT",
    "LINK_MESSAGES",
    "MAX_ANNOUNCED",
    "MAX_CHANGES",
    "MAX_LINK_CONTROL",
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
    "LinkReady",
    "LinkRejected",
    "LinkRoomMessage",
    "LinkSender",
    "LinkTrack",
    "LinkTraffic",
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
]
