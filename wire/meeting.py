"""Meeting key-schedule and sender-authentication formats (DESIGN section 9; issue 18,
"keys for a meeting of 200"): end to end only.

A meeting's key leader hands each participant the current epoch secret inside the pairwise
post-quantum sessions, as it does every change of the participant list; no node reads any
of these. The participant list (the *roster*) is signed by the leader's identity key.
Senders sign digests of their recent SFrame ciphertexts, so a member cannot pass off frames
under another's id (RFC 9605 gives no sender authentication inside a group).

    RosterEntry      one participant: meeting participant id (``pid``, stable for the
                     meeting, end to end, in every SFrame KID), address, device and the
                     fingerprint of its identity signing key
    RosterBody       what the leader signs: meeting id, epoch, the leader's pid, why the
                     epoch changed, when, and the participants in joining order
    SignedRoster     the body, the leader's identity signing public key and its signature
                     under ``CTX_MEETING_ROSTER``
    MeetingEpochKey  leader -> one participant, pairwise: a new epoch, the hash of its
                     roster, and ``secret``: the 32-byte epoch secret (a fresh one, or a
                     newcomer's), or absent when the receiver ratchets the one it holds
                     forward (a join). Small: it fits the smallest envelope bucket
    SealedRoster     leader -> every other participant at once (one shared upload): the
                     encoded ``SignedRoster`` of an epoch, AES-256-GCM under a key derived
                     from that epoch's secret (``client.meetings.keys.roster_key``), so only
                     holders of the epoch open it; nothing of it is in the clear
    MeetingEpoch     the shape before ``MeetingEpochKey`` (the whole signed roster in every
                     pairwise message): still decoded so that it is recognised, and refused
                     (``meeting.old_shape``) by the key schedule
    MeetingAck       participant -> leader: I hold epoch ``epoch``
    MeetingSwitch    leader -> participants: send under ``epoch`` from now on
    MeetingLeave     participant -> leader: I am leaving
    FrameDigestBody  what a sender signs: its stream (pid, kind, layer), epoch, the index
                     of the first frame and the truncated SHA-384 of each SFrame ciphertext
                     from there on
    FrameSignature   the body, optionally the signer's identity signing public key (so a
                     receiver that lacks it can check it against the roster), and the
                     signature under ``CTX_MEETING_FRAMES``

:func:`decode_meeting` raises only :class:`wire.errors.WireError`.
"""

from __future__ import annotations

from enum import IntEnum
from itertools import pairwise
from typing import Annotated, Final, TypeAlias

from wire.codec import decode
from wire.e2e import Address, DeviceId, Key, Sig
from wire.schema import message
from wire.types import U8, U32, U64, Bytes16, Bytes32, Len, MaxLen, MinLen

MEETING_ID_LEN: Final = 16
"""Bytes of a meeting id (random; it names the meeting only to its participants)."""
EPOCH_SECRET_LEN: Final = 32
"""Bytes of an epoch secret."""
MAX_PARTICIPANTS: Final = 256
"""Participants of one meeting (the issue's 200, with room)."""
FINGERPRINT_LEN: Final = 48
"""Bytes of a key fingerprint (SHA-384)."""
ROSTER_HASH_LEN: Final = 48
"""Bytes of a roster hash (SHA-384, ``client.meetings.roster.roster_hash``)."""
ROSTER_NONCE_LEN: Final = 12
"""Bytes of a :class:`SealedRoster`'s AES-GCM nonce."""
MAX_SEALED_ROSTER: Final = 1 << 20
"""Bytes of a :class:`SealedRoster`'s ciphertext at most (256 entries with their longest
addresses, a key and a signature stay far below)."""
FRAME_DIGEST_LEN: Final = 16
"""Bytes of one frame's digest in a :class:`FrameDigestBody` (SHA-384, truncated)."""
MAX_SIGNED_FRAMES: Final = 256
"""Frames one :class:`FrameDigestBody` covers at most."""
MAX_LAYER: Final = 3
"""Highest simulcast layer (``wire.media``'s two bits)."""

MeetingId: TypeAlias = Bytes16
Fingerprint: TypeAlias = Annotated[bytes, Len(FINGERPRINT_LEN)]
RosterHash: TypeAlias = Annotated[bytes, Len(ROSTER_HASH_LEN)]
FrameDigest: TypeAlias = Annotated[bytes, Len(FRAME_DIGEST_LEN)]


class EpochCause(IntEnum):
    """Why the roster and the epoch changed (``RosterBody.cause``)."""

    START = 0
    """The meeting started (epoch 0)."""
    JOIN = 1
    """Participants joined: the epoch secret was ratcheted forward."""
    LEAVE = 2
    """Participants left: a fresh epoch secret."""
    ROTATE = 3
    """The periodic rotation: a fresh epoch secret."""
    HANDOVER = 4
    """The leader left and the next participant took over: a fresh epoch secret."""
    REMOVE = 5
    """Participants were removed from the group (others may have left in the same batch):
    a fresh epoch secret."""


@message("meeting.participant")
class RosterEntry:
    """A participant: its ``pid`` and who it is (address, device, key fingerprint)."""

    pid: U32
    address: Address
    device: DeviceId
    fp: Fingerprint


@message("meeting.roster-body")
class RosterBody:
    """The signed participant list of ``epoch``; ``leader`` is a pid among them; entries
    in joining order (pids strictly rising), each pid once."""

    meeting: MeetingId
    epoch: U32
    leader: U32
    cause: EpochCause
    issued_ms: U64
    participants: Annotated[tuple[RosterEntry, ...], MinLen(1), MaxLen(MAX_PARTICIPANTS)]

    def __post_init__(self) -> None:
        pids = [p.pid for p in self.participants]
        if any(a >= b for a, b in pairwise(pids)):
            raise ValueError("participants are listed in joining order, each once")
        if self.leader not in pids:
            raise ValueError("the leader is a participant")


@message("meeting.roster")
class SignedRoster:
    """A roster signed by its leader: ``key`` is the leader's identity signing public key
    (its fingerprint is the leader's entry's), ``sig`` over ``encode(body)``."""

    body: RosterBody
    key: Key
    sig: Sig


@message("meeting.epoch")
class MeetingEpoch:
    """The older shape of a new epoch (the signed roster in every pairwise message): a
    participant refuses it (``meeting.old_shape``); :class:`MeetingEpochKey` and
    :class:`SealedRoster` replace it."""

    roster: SignedRoster
    secret: Bytes32 | None

    def __repr__(self) -> str:
        """Everything but the secret, so that a logged epoch shows no key."""
        body = self.roster.body
        return f"MeetingEpoch(meeting={body.meeting.hex()}, epoch={body.epoch})"


@message("meeting.epoch-key")
class MeetingEpochKey:
    """A new epoch for one participant, pairwise: ``roster`` is the hash of the epoch's
    roster body (it comes apart, in a :class:`SealedRoster`); ``secret`` is None when the
    receiver derives it by ratcheting the previous epoch's secret (a join)."""

    meeting: MeetingId
    epoch: U32
    roster: RosterHash
    secret: Bytes32 | None

    def __repr__(self) -> str:
        """Everything but the secret, so that a logged epoch shows no key."""
        return f"MeetingEpochKey(meeting={self.meeting.hex()}, epoch={self.epoch})"


@message("meeting.sealed-roster")
class SealedRoster:
    """An epoch's ``SignedRoster``, encoded and sealed under that epoch's roster key: the
    one upload of a roster to every participant. Opaque without the epoch's secret."""

    nonce: Annotated[bytes, Len(ROSTER_NONCE_LEN)]
    c: Annotated[bytes, MinLen(1), MaxLen(MAX_SEALED_ROSTER)]


@message("meeting.ack")
class MeetingAck:
    """The sender holds the secret of ``epoch``."""

    meeting: MeetingId
    epoch: U32


@message("meeting.switch")
class MeetingSwitch:
    """Send under ``epoch`` from now on."""

    meeting: MeetingId
    epoch: U32


@message("meeting.leave")
class MeetingLeave:
    """The sender leaves the meeting."""

    meeting: MeetingId
    pid: U32


@message("meeting.frames-body")
class FrameDigestBody:
    """Digests of the frames ``first``, ``first + 1``, ... of one stream, in order."""

    meeting: MeetingId
    pid: U32
    kind: U8
    layer: U8
    epoch: U32
    first: U32
    digests: Annotated[tuple[FrameDigest, ...], MinLen(1), MaxLen(MAX_SIGNED_FRAMES)]

    def __post_init__(self) -> None:
        if self.kind not in (0, 1) or self.layer > MAX_LAYER or (self.kind == 0 and self.layer):
            raise ValueError("kind 0 (audio, layer 0) or 1 (video, layer 0..3)")
        if self.first + len(self.digests) - 1 > 0xFFFF_FFFF:
            raise ValueError("frame indices are u32")


@message("meeting.frames")
class FrameSignature:
    """``body`` signed by the sender's identity key under ``CTX_MEETING_FRAMES``."""

    body: FrameDigestBody
    key: Key | None
    sig: Sig


MeetingMessage: TypeAlias = (
    MeetingEpoch
    | MeetingEpochKey
    | SealedRoster
    | MeetingAck
    | MeetingSwitch
    | MeetingLeave
    | SignedRoster
    | FrameSignature
)
MESSAGE_TYPES: Final[tuple[type, ...]] = (
    MeetingEpoch,
    MeetingEpochKey,
    SealedRoster,
    MeetingAck,
    MeetingSwitch,
    MeetingLeave,
    SignedRoster,
    FrameSignature,
)


def decode_meeting(data: bytes) -> MeetingMessage:
    """The meeting message encoded in ``data``; :class:`~wire.errors.WireError` otherwise."""
    msg: MeetingMessage = decode(data, MESSAGE_TYPES)  # type: ignore[assignment]
    return msg
