"""Control messages of a media connection between a client and its own node (DESIGN
section 9; issue 17, "the media path").

A client that opened a media connection to its node (QUIC: the control stream of
``transport.quic``; the WebSocket fallback: its control messages) binds it to the call leg
its node allocated, with the leg's bearer secret, before it sends any media datagram::

    client -> node   MediaBind{leg_id, leg_secret}      the first control message
    node -> client   MediaBound{leg_id, sender}         the sender id the client must put in
                                                        the clear header of its datagrams
                                                        (``wire.media``)
                  or MediaRefused{code, message}        ``call.no_leg``, ``call.bad_secret``,
                                                        ``call.expired`` (``trust.errors``);
                                                        then the node closes the connection

Anything else first on the control stream (bytes that do not decode as a ``MediaBind``)
closes the connection with :data:`CLOSE_MALFORMED_CONTROL`; no answer is sent. The QUIC
application close codes (RFC 9000 section 20.2) a node uses on a media connection are here,
so that a client can tell them apart: :data:`CLOSE_MALFORMED_CONTROL`,
:data:`CLOSE_BIND_REFUSED`, :data:`CLOSE_BIND_TIMEOUT`, :data:`CLOSE_LEG_ENDED`,
:data:`CLOSE_REBOUND`. ``transport.quic`` uses ``0x0`` and ``0x101``/``0x102``.
"""

from __future__ import annotations

from typing import Annotated, Final

from wire.codec import decode
from wire.schema import message
from wire.types import U8, U16, U32, Bytes16, Bytes32, MaxLen

CLOSE_MALFORMED_CONTROL: Final = 0x201
"""The first control message was not a well-formed ``MediaBind``."""
CLOSE_BIND_REFUSED: Final = 0x202
"""The bind was refused; the ``MediaRefused`` sent before the close says why."""
CLOSE_BIND_TIMEOUT: Final = 0x203
"""No ``MediaBind`` arrived in time after the connection was established."""
CLOSE_LEG_ENDED: Final = 0x204
"""The leg this connection was bound to ended (expired, hung up, its peer ended)."""
CLOSE_REBOUND: Final = 0x205
"""Another connection bound the same leg (a reconnect): this one no longer carries it."""

MAX_CODE_LEN: Final = 64
MAX_MESSAGE_LEN: Final = 512


@message("media.bind")
class MediaBind:
    """Bind this media connection to the leg ``leg_id`` (``node.calls``) by its secret."""

    leg_id: Bytes16
    leg_secret: Bytes32

    def __repr__(self) -> str:
        """Everything but the secret, so that a logged bind shows no credential."""
        return f"MediaBind(leg_id={self.leg_id.hex()})"


@message("media.bound")
class MediaBound:
    """The connection carries leg ``leg_id``; its datagrams name the sender ``sender``."""

    leg_id: Bytes16
    sender: U32


@message("media.refused")
class MediaRefused:
    """The bind was refused with the stable ``code`` (``trust.errors``: ``call.*``)."""

    code: Annotated[str, MaxLen(MAX_CODE_LEN)]
    message: Annotated[str, MaxLen(MAX_MESSAGE_LEN)]


def decode_bind(data: bytes) -> MediaBind:
    """The ``MediaBind`` in ``data``; :class:`~wire.errors.WireError` otherwise."""
    return decode(data, MediaBind)


def decode_bind_answer(data: bytes) -> MediaBound | MediaRefused:
    """The node's answer to a ``MediaBind``; :class:`~wire.errors.WireError` otherwise."""
    answer: MediaBound | MediaRefused = decode(data, (MediaBound, MediaRefused))
    return answer


# --- meetings (``node.sfu``; issue 18): after the bind of a meeting leg ---------------------


@message("media.video")
class MediaVideo:
    """Client -> node on a meeting leg's control stream: receive up to ``max_videos``
    videos no taller than ``max_height`` within ``budget_kbps`` (the same request as
    ``wire.relay_meetings.MeetingVideo``, on the media path)."""

    max_videos: U8
    max_height: U16
    budget_kbps: U32


@message("media.layer")
class MediaLayer:
    """Node -> client: stop (``active`` false) or start again sending simulcast ``layer``
    of the stream ``sender`` (nobody receives it, or somebody does again)."""

    sender: U32
    layer: U8
    active: bool


@message("media.keyframe")
class MediaKeyframe:
    """Node -> client: send a keyframe of simulcast ``layer`` of the stream ``sender`` (a
    receiver waits for one to switch to that layer)."""

    sender: U32
    layer: U8


def decode_meeting_control(data: bytes) -> MediaVideo:
    """A client's control message on a bound meeting leg; :class:`~wire.errors.WireError`
    otherwise."""
    return decode(data, MediaVideo)


def decode_notice(data: bytes) -> MediaLayer | MediaKeyframe:
    """A node's notice on a bound meeting leg; :class:`~wire.errors.WireError` otherwise."""
    notice: MediaLayer | MediaKeyframe = decode(data, (MediaLayer, MediaKeyframe))
    return notice
