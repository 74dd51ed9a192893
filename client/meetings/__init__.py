"""End-to-end keys and sender authentication of meetings (DESIGN section 9; issue 18).

    MeetingLeader, MeetingMember   the key schedule (``keys``; the participant's side in
                                   ``member``, the derivations in ``derive``): epochs from a
                                   key leader, ratcheted on join, fresh on leave (batched)
                                   and every 5 minutes, switched after acks or 1 s, hand-over
                                   to the earliest-joined remaining participant; messages out
                                   as :class:`Send` for the pairwise sessions and ``Shared``
                                   for the one upload of each epoch's sealed roster; what
                                   waits until an epoch's key and roster are both here
                                   (``intake``)
    check_roster, sign_roster      the leader-signed participant list (``roster``), sealed
                                   under a key of its epoch and named by hash
    MeetingCrypto                  SFrame protect / unprotect with those keys (``media``)
    FrameSigner, FrameVerifier     signed digests of each sender's frames, so a member
                                   cannot pass frames off as another's (``frameauth``),
                                   sent in band as signature datagrams (``signatures``)

    GroupMeeting                   the meeting of a sealrelay group on one device: host or
                                   join, invites and requests, the key schedule's messages
                                   as pairwise notes, hand-over, glare (``group``, its
                                   inputs and outputs in ``events``);
                                   members removed from the group leave the meeting
                                   (``membership``)
    PidCrypto, audio_level, ...    frames for the calls' packetizer and receiver (``framing``)

Formats in ``wire.meeting`` and ``client.content`` (``MeetingNote``). The modules above are
pure: time, randomness and signing are injected. The trio shells: ``net`` (signalling over
the pairwise sessions), ``mediarun`` (one participant's media in a room) and ``meet`` (one
run of ``sealrelay client meet``, ``client.cli_meet``).
"""

from __future__ import annotations

from client.meetings.errors import MeetingError, MeetingKeyError, RosterError
from client.meetings.frameauth import (
    Failure,
    FrameSigner,
    FrameVerifier,
    StreamReport,
    frame_digest,
)
from client.meetings.keys import (
    EPOCH_GRACE_MS,
    LEAVE_BATCH_MS,
    ROTATE_INTERVAL_MS,
    SWITCH_TIMEOUT_MS,
    MeetingLeader,
    MeetingMember,
    Send,
    kid,
    kid_parts,
    ratchet,
    sender_base_key,
)
from client.meetings.media import MeetingCrypto
from client.meetings.roster import check_roster, key_fingerprint, sign_roster, successor

__all__ = [
    "EPOCH_GRACE_MS",
    "LEAVE_BATCH_MS",
    "ROTATE_INTERVAL_MS",
    "SWITCH_TIMEOUT_MS",
    "Failure",
    "FrameSigner",
    "FrameVerifier",
    "MeetingCrypto",
    "MeetingError",
    "MeetingKeyError",
    "MeetingLeader",
    "MeetingMember",
    "RosterError",
    "Send",
    "StreamReport",
    "check_roster",
    "frame_digest",
    "key_fingerprint",
    "kid",
    "kid_parts",
    "ratchet",
    "sender_base_key",
    "sign_roster",
    "successor",
]
