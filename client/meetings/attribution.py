"""Whose fault a failing frame signature is (``client.meetings.frameauth``; issue 18).

A signature names the pid it speaks for in its signed body, but any member can send one
naming any pid: the node only binds the datagram's *sender id* to the connection that sends
it (``docs/calls.md``, ``stream_not_bound``). So a signature that fails to verify proves
nothing against the pid it names, only against the sender id it came on. Condemning the
named pid's stream on it would let any member silence another with one bad signature.

:class:`SenderTies` ties each pid to the node sender id on which its verified signatures
arrive, and answers who a failing one is blamed on:

* on the sender id tied to its pid: the pid's own connection sent it, and its stream is
  condemned (``bad_signature``), as before;
* on any other sender id (or before the pid is tied to one): that sender's forgery. It is
  reported once per sender id (:class:`ForgedSignature`), and from then on signatures on
  that sender id naming a pid it is not tied to are dropped unchecked. The named pid's
  stream is not condemned: its frames are still held to its own verified signatures (a
  frame they do not cover stays unsigned, and too many condemn it), so nothing is lost.

Reconnects: a participant's new connection gets new sender ids. A verified signature on a
new sender id ties the pid to it once the old one has carried no fresh verified signature
of that pid for :data:`RETIE_QUIET_MS` (a connection that went quiet). A signature
verified before (the same body and signature bytes) is a replay, maybe by a member that
copied its victim's signature onto its own sender id: it is dropped unchecked and ties
nothing. What this does not cover: a member that relays to a receiver a signature of its
victim that the receiver has not had (a video layer it does not receive), while the victim
has sent that receiver nothing fresh for :data:`RETIE_QUIET_MS`, ties the victim to the
member's sender id (until that one carries nothing fresh of the victim's for as long);
binding the sender id into the signed body would narrow that, and needs a change of the
wire format.

Pure: time is an argument (ms).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

RETIE_QUIET_MS: Final = 3000
"""A pid's tie moves to another sender id only after the tied one carried no fresh
verified signature of it for this long (three signing intervals)."""
MAX_SEEN: Final = 256
"""Verified signatures remembered per pid, to tell a replay (a few minutes of streams)."""


@dataclass(frozen=True, slots=True)
class ForgedSignature:
    """A signature claiming ``stream`` (pid, kind, layer) failed on node sender id
    ``sender``, which is not the one tied to that pid: ``sender``'s forgery. ``pid`` is
    the participant ``sender`` is tied to (its own verified signatures arrive there), or
    None."""

    sender: int
    stream: tuple[int, int, int]
    pid: int | None


@dataclass(slots=True)
class _Tie:
    sender: int
    fresh: int  # when the last fresh verified signature of the pid came on it


def signature_id(body: bytes, sig: bytes) -> bytes:
    """What tells a replayed signature: a digest of its encoded body and signature."""
    return hashlib.sha256(body + sig).digest()


class SenderTies:
    """The pid <-> sender id ties of one receiver (module docstring)."""

    def __init__(self) -> None:
        self._ties: dict[int, _Tie] = {}
        self._seen: dict[int, dict[bytes, None]] = {}
        self._forgers: set[int] = set()
        self.refused = 0
        """Signatures dropped unchecked: replays, and a known forger's."""

    def admits(self, pid: int, sender: int | None, ident: bytes) -> bool:
        """Whether a signature naming ``pid`` (its :func:`signature_id` ``ident``) that came
        on ``sender`` is worth checking: not a replay of a verified one, and not from a
        sender id that forged before, naming a pid it is not tied to."""
        replay = ident in self._seen.get(pid, {})
        forger = sender in self._forgers and not self.speaks_for(pid, sender)
        if replay or forger:
            self.refused += 1
            return False
        return True

    def speaks_for(self, pid: int, sender: int | None) -> bool:
        """Whether a signature naming ``pid`` on ``sender`` comes from ``pid``'s own
        connection: ``sender`` is the one tied to it. None (the caller does not know where
        it came from) is taken as the pid's own."""
        tie = self._ties.get(pid)
        return sender is None or (tie is not None and tie.sender == sender)

    def verified(self, pid: int, sender: int | None, ident: bytes, now: int) -> None:
        """A fresh signature of ``pid`` verified on ``sender``: remembered, and ``pid`` tied
        to ``sender`` if it is tied to none, to it already, or to one quiet for
        :data:`RETIE_QUIET_MS`."""
        seen = self._seen.setdefault(pid, {})
        seen[ident] = None
        if len(seen) > MAX_SEEN:
            del seen[next(iter(seen))]
        if sender is None:
            return
        tie = self._ties.get(pid)
        if tie is None or tie.sender == sender or now - tie.fresh >= RETIE_QUIET_MS:
            self._ties[pid] = _Tie(sender, now)

    def blame(self, stream: tuple[int, int, int], sender: int) -> ForgedSignature | None:
        """A signature claiming ``stream`` failed on ``sender``, not its pid's: a report the
        first time ``sender`` does so, else None."""
        if sender in self._forgers:
            return None
        self._forgers.add(sender)
        own = [pid for pid, tie in self._ties.items() if tie.sender == sender]
        return ForgedSignature(sender, stream, own[0] if own else None)
