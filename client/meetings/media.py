"""SFrame encryption of a participant's media in a meeting (RFC 9605; issue 18).

:class:`MeetingCrypto` wraps :class:`suites.sframe.SFrameContext` with the keys of a
:class:`client.meetings.keys.MeetingMember`: frames go out under the KID of (the epoch the
member sends under, its pid), and a received frame's KID names the (epoch, pid) whose key
opens it, derived on first use and dropped once the member forgets that epoch. Each receive
KID has an anti-replay window of :data:`REPLAY_WINDOW` counters (section 9.3). A frame
counts in that window only once the caller plays it (:meth:`MeetingCrypto.open`): a frame
that authenticates but is refused as another's forgery (``client.meetings.attribution``)
must not move the window of the pid it claims, or a forger sending far-ahead counters under
its victim's KID would have the victim's own frames refused as too old.

What the SFrame tag proves is only that *some* holder of the epoch secret made the frame:
any participant could make frames under another's pid. ``client.meetings.frameauth`` closes
that. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from client.meetings.keys import SUITE, MeetingMember, kid_parts
from suites import sframe

REPLAY_WINDOW: Final = 1024
"""Counters of the anti-replay window per receive KID."""


class _Staged:
    """A :class:`suites.sframe.ReplayWindow` that holds the counter of the frame just
    authenticated until the caller commits it (module docstring)."""

    def __init__(self, size: int) -> None:
        self._window = sframe.ReplayWindow(size)
        self.staged: tuple[int, int] | None = None

    def check(self, kid: int, ctr: int) -> bool:
        return self._window.check(kid, ctr)

    def accept(self, kid: int, ctr: int) -> None:
        self.staged = (kid, ctr)

    def commit(self) -> None:
        if self.staged is not None:
            self._window.accept(*self.staged)
        self.staged = None


class MeetingCrypto:
    """One participant's SFrame keys for a meeting, on top of its key schedule."""

    def __init__(self, member: MeetingMember) -> None:
        self.member = member
        self._replay = _Staged(REPLAY_WINDOW)
        self._ctx = sframe.SFrameContext(SUITE, replay_guard=self._replay)
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
        self._replay.staged = None
        opened = self._open(frame, metadata)
        self._replay.commit()
        return opened

    def open(
        self, frame: bytes, metadata: bytes, admit: Callable[[int, int], bool]
    ) -> tuple[int, int, bytes] | None:
        """As :meth:`unprotect`, but a frame that authenticates counts in its KID's
        anti-replay window only if ``admit(pid, epoch)``; None if it does not."""
        self._replay.staged = None
        pid, epoch, plaintext = self._open(frame, metadata)
        if not admit(pid, epoch):
            self._replay.staged = None
            return None
        self._replay.commit()
        return pid, epoch, plaintext

    def _open(self, frame: bytes, metadata: bytes) -> tuple[int, int, bytes]:
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
