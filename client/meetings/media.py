"""SFrame encryption of a participant's media in a meeting (RFC 9605; issue 18).

:class:`MeetingCrypto` wraps :class:`suites.sframe.SFrameContext` with the keys of a
:class:`client.meetings.keys.MeetingMember`: frames go out under the KID of (the epoch the
member sends under, its pid), and a received frame's KID names the (epoch, pid) whose key
opens it, derived on first use and dropped once the member forgets that epoch. Each receive
KID has an anti-replay window of :data:`REPLAY_WINDOW` counters (section 9.3).

What the SFrame tag proves is only that *some* holder of the epoch secret made the frame:
any participant could make frames under another's pid. ``client.meetings.frameauth`` closes
that. Pure.
"""

from __future__ import annotations

from typing import Final

from client.meetings.keys import SUITE, MeetingMember, kid_parts
from suites import sframe

REPLAY_WINDOW: Final = 1024
"""Counters of the anti-replay window per receive KID."""


class MeetingCrypto:
    """One participant's SFrame keys for a meeting, on top of its key schedule."""

    def __init__(self, member: MeetingMember) -> None:
        self.member = member
        self._ctx = sframe.SFrameContext(SUITE, replay_guard=sframe.ReplayWindow(REPLAY_WINDOW))
        self._send_kid: int | None = None
        self._recv: dict[int, set[int]] = {}  # epoch -> receive KIDs added

    @property
    def send_kid(self) -> int | None:
        """The KID of the last frame protected."""
        return self._send_kid

    def protect(self, metadata: bytes, plaintext: bytes) -> bytes:
        """The SFrame ciphertext of ``plaintext`` under the member's send epoch."""
        key_id, base_key = self.member.send_key()
        if key_id != self._send_kid:
            if self._send_kid is not None:
                self._ctx.remove_key(self._send_kid)
            self._ctx.add_send_key(key_id, base_key)
            self._send_kid = key_id
        return self._ctx.protect(key_id, metadata, plaintext)

    def unprotect(self, frame: bytes, metadata: bytes) -> tuple[int, int, bytes]:
        """``(pid, epoch, plaintext)`` of a received frame. Raises what
        ``SFrameContext.unprotect`` raises; ``UnknownKidError`` for an epoch not held."""
        key_id = sframe.decode_header(frame).kid
        epoch, pid = kid_parts(key_id)
        self._expire()
        added = self._recv.setdefault(epoch, set())
        if key_id not in added:
            base_key = self.member.recv_key(key_id)
            if base_key is None:
                raise sframe.UnknownKidError("no key for this frame's epoch and sender")
            self._ctx.add_recv_key(key_id, base_key)
            added.add(key_id)
        return pid, epoch, self._ctx.unprotect(frame, metadata)[2]

    def _expire(self) -> None:
        """Drop the keys of the epochs the member no longer holds (forward secrecy)."""
        for epoch in [e for e in self._recv if not self.member.holds(e)]:
            for key_id in self._recv.pop(epoch):
                self._ctx.remove_key(key_id)
