"""The application payload inside an end-to-end plaintext (what ``Device.encrypt`` seals).

These schemas never leave the two clients, so they live with the client (tags start with
``client.``), encoded with the canonical ``wire`` codec. A message carries::

    text         the text, UTF-8
    sent         the sender's clock when it wrote the message (Unix ms; informational)
    reply_token  the sender account's own delivery token, so the recipient can answer with
                 ``Send`` instead of ``Introduce``
    reply_mailbox  the sending device's mailbox id (where an answer goes)
    expire       disappearing timer in seconds, counted from receipt (``None``: keep)
    attachments  pointers to encrypted blobs (``client.attachments``)

A pairwise plaintext may instead carry group administration (docs/groups.md section 8): a
``client.groups.GroupControl`` (a change, a welcome or a sender-key distribution), or a
:class:`GroupNote`: such a control together with the group transport key of the state it
leads to (:class:`GroupKey`) and the sender's reply token and mailbox, so that members who
never wrote to each other still reach each other with a delivery token.

:func:`pack` / :func:`unpack` (a ``Content``) and :func:`unpack_payload` (any of the three)
are the entry points; both unpacks raise :class:`~client.errors.BadContent` for anything
that is not a valid payload.

Call signalling (issue 17, ``wire.calls``) travels as a :class:`CallNote`: one signal with
the sender's reply token and mailbox, since a callee answers callers it never wrote to.
:func:`pack_call` / :func:`unpack_call` pack one; :func:`unpack_pairwise` reads any pairwise
plaintext, call notes included: the receive path reads with it and hands call notes to
``client.calls.callnet`` (``unpack_payload`` refuses them).

Meetings of a group (issue 18) travel as a :class:`MeetingNote`: the group it concerns, one
signal (a :class:`MeetingInvite` from the host, a :class:`MeetingRequest` to join, or a key
schedule message of ``wire.meeting``) and the sender's reply details; :func:`unpack_pairwise`
reads it too and the receive path hands it to ``client.meetings``.
"""

from __future__ import annotations

from typing import Annotated, Final

from client.errors import BadContent
from client.groups.control import GroupControl
from wire import U32, U64, Bytes16, Bytes32, MaxLen, WireError, decode, encode, message
from wire.calls import CallSignal
from wire.e2e import DeliveryToken
from wire.group import GroupTokens
from wire.meeting import Fingerprint, MeetingId, MeetingMessage
from wire.relay_common import Domain
from wire.relay_meetings import RoomId

MAX_TEXT: Final = 64 * 1024
MAX_ATTACHMENTS: Final = 32
MAX_NAME: Final = 255
MAX_CONTENT_TYPE: Final = 127


@message("client.attachment")
class AttachmentPointer:
    """Where an attachment is and how to open it.

    ``blob`` names it on the sender's node; ``key`` (32 bytes) opens it; ``digest`` is the
    SHA-256 of the uploaded ciphertext, checked before anything is decrypted; ``size`` is
    the plaintext size and ``cipher_size`` the uploaded size.
    """

    blob: Bytes16
    key: Bytes32
    digest: Bytes32
    size: U64
    cipher_size: U64
    name: Annotated[str, MaxLen(MAX_NAME)]
    content_type: Annotated[str, MaxLen(MAX_CONTENT_TYPE)]


@message("client.content")
class Content:
    """One message as the sender wrote it."""

    text: Annotated[str, MaxLen(MAX_TEXT)]
    sent: U64
    reply_token: DeliveryToken | None
    reply_mailbox: Bytes16 | None
    expire: U32 | None
    attachments: Annotated[tuple[AttachmentPointer, ...], MaxLen(MAX_ATTACHMENTS)]

    def __post_init__(self) -> None:
        if self.expire == 0:
            raise ValueError("a disappearing timer is at least one second")


def pack(content: Content) -> bytes:
    """The plaintext to encrypt."""
    return encode(content)


def unpack(plaintext: bytes) -> Content:
    """The content of a decrypted plaintext; :class:`BadContent` if it is not one."""
    try:
        return decode(plaintext, Content)
    except WireError:
        raise BadContent("the message content does not decode") from None


@message("client.group-key")
class GroupKey:
    """The group transport key (32 bytes, AES-256-GCM) of the group state whose head is the
    change ``head`` (its change id), chosen by that change's signer."""

    head: Annotated[bytes, MaxLen(64)]
    key: Bytes32


@message("client.group-note")
class GroupNote:
    """A group control message with what the network layer adds to it (docs/groups.md)."""

    control: GroupControl
    key: GroupKey | None
    reply_token: DeliveryToken | None
    reply_mailbox: Bytes16 | None


Payload = Content | GroupControl | GroupNote | GroupTokens
"""A ``GroupTokens`` is a member's report of its group token or an admin's publication of
the members' tokens (``wire.group``, docs/groups.md section 9)."""


def unpack_payload(plaintext: bytes) -> Payload:
    """A pairwise plaintext: a message, or group administration for ``client.groupnet``."""
    try:
        payload = decode(plaintext, (Content, GroupControl, GroupNote, GroupTokens))
    except WireError:
        raise BadContent("the message content does not decode") from None
    assert isinstance(payload, Content | GroupControl | GroupNote | GroupTokens)  # noqa: S101
    return payload


@message("client.call-note")
class CallNote:
    """A call signal with the sender's reply details (``wire.calls``, DESIGN section 9)."""

    signal: CallSignal
    reply_token: DeliveryToken | None
    reply_mailbox: Bytes16 | None


def pack_call(note: CallNote) -> bytes:
    """The plaintext of a call note."""
    return encode(note)


def unpack_call(plaintext: bytes) -> CallNote:
    """The call note of a decrypted plaintext; :class:`BadContent` if it is not one."""
    try:
        return decode(plaintext, CallNote)
    except WireError:
        raise BadContent("the call signal does not decode") from None


@message("client.meeting-invite")
class MeetingInvite:
    """The host of a group's meeting to the group's members: meeting ``meeting`` (end to
    end) in room ``room`` of the node of domain ``anchor`` (the first host's: a key leader
    that took over keeps the room where it is, issue 18 "the meeting's anchor is the host's
    node"), led by the key whose fingerprint is ``leader_fp``
    (``client.meetings.roster.key_fingerprint``); live until ``expires_ms`` of the host's
    clock (Unix ms), renewed while the meeting runs."""

    meeting: MeetingId
    room: RoomId
    leader_fp: Fingerprint
    sent_ms: U64
    expires_ms: U64
    anchor: Domain


@message("client.meeting-request")
class MeetingRequest:
    """A member to the key leader: let me join meeting ``meeting``."""

    meeting: MeetingId


MeetingSignal = MeetingInvite | MeetingRequest | MeetingMessage


@message("client.meeting-note")
class MeetingNote:
    """A meeting signal of group ``group`` with the sender's reply details."""

    group: Bytes16
    signal: MeetingSignal
    reply_token: DeliveryToken | None
    reply_mailbox: Bytes16 | None


def pack_meeting(note: MeetingNote) -> bytes:
    """The plaintext of a meeting note."""
    return encode(note)


Pairwise = Payload | CallNote | MeetingNote
_PAIRWISE: Final = (Content, GroupControl, GroupNote, GroupTokens, CallNote, MeetingNote)


def unpack_pairwise(plaintext: bytes) -> Pairwise:
    """Any pairwise plaintext: a message, group administration, a call or meeting signal."""
    try:
        payload = decode(plaintext, _PAIRWISE)
    except WireError:
        raise BadContent("the message content does not decode") from None
    assert isinstance(payload, _PAIRWISE)  # noqa: S101
    return payload
