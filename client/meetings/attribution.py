"""Whose fault a failing frame signature, or a frame, is (``client.meetings.frameauth``;
issue 18).

A signature names the pid it speaks for in its signed body, and a frame names its pid in
its KID, but any member can send either naming any pid: every member holds the epoch
secret, and the node only binds the datagram's *sender id* to the connection that sends it
(``docs/calls.md``, ``stream_not_bound``). So a signature that fails, or a frame that is
not its pid's, proves nothing against the pid it names, only against the sender id it came
on. Condemning the named pid's stream on it would let any member silence another.

:class:`SenderTies` ties each pid to the node sender id on which its verified signatures
arrive (only the pid's identity key makes one, so a forger cannot win a tie), and answers
who is to blame:

* a failing signature on the sender id tied to its pid: the pid's own connection sent it,
  and its stream is condemned (``bad_signature``), as before;
* on any other sender id (or before the pid is tied to one): that sender's forgery. It is
  reported once per sender id (:class:`Forgery`), and from then on signatures on that
  sender id naming a pid it is not tied to are dropped unchecked;
* a frame of a pid that is tied to another sender id, or that came on a sender id tied to
  another pid (a connection is one participant's), is *foreign* (:meth:`SenderTies.foreign`):
  it is dropped, never played, and never held against the pid it names, whose genuine frames
  keep playing. :class:`FrameClaims` reports the sender id as forging frames of that pid
  (``forged_frame``, once per sender id and pid): at once if the sender id is tied to
  another pid, else once :data:`CLAIM_BOUND_MS` went by without a verified signature of the
  pid on that sender id (so a pid's new connection, below, is not taken for a forger);
* a frame of a pid tied to nothing yet, on a sender id tied to nothing or to it: played and
  held to the pid's signatures as before; when the pid's first verified signature ties it,
  those of its held frames that came on other sender ids that never carried one of its
  verified signatures are foreign after all (:meth:`SenderTies.verified` says when to look).

Reconnects: a participant's new connection gets new sender ids. A verified signature on a
new sender id ties the pid to it once the old one has carried no fresh verified signature
of that pid for :data:`RETIE_QUIET_MS` (a connection that went quiet); until then the new
connection's frames are foreign at that receiver (dropped, not reported: it carries the
pid's verified signatures). A signature verified before (the same body and signature
bytes) is a replay, maybe by a member that copied its victim's signature onto its own
sender id: it is dropped unchecked and ties nothing. What this does not cover: a member
that relays to a receiver a signature of its victim that the receiver has not had (a video
layer it does not receive), while the victim has sent that receiver nothing fresh for
:data:`RETIE_QUIET_MS`, ties the victim to the member's sender id (until that one carries
nothing fresh of the victim's for as long), and is then not reported for the victim's
frames; binding the sender id into the signed body would narrow that, and needs a change of
the wire format. Nor does it tell whose a frame is when neither its pid nor its sender id is
tied to anything at a receiver (it counts against the pid's stream, as an unsigned frame).

Pure: time is an argument (ms).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

RETIE_QUIET_MS: Final = 3000
"""A pid's tie moves to another sender id only after the tied one carried no fresh
verified signature of it for this long (three signing intervals)."""
MAX_SEEN: Final = 256
"""Verified signatures remembered per pid, to tell a replay (a few minutes of streams)."""
MAX_CARRIERS: Final = 8
"""Sender ids remembered per pid as having carried one of its verified signatures (its
connections: a few reconnects)."""
CLAIM_BOUND_MS: Final = 3000
"""How long a sender id carrying foreign frames of a pid may take to carry one of the pid's
verified signatures (a new connection of the pid) before it is reported as forging them:
three signing intervals, as :data:`RETIE_QUIET_MS`."""
MAX_CLAIMS: Final = 1024
"""Undecided (sender id, pid) claims kept; beyond, the oldest is decided at once."""

Stream = tuple[int, int, int]
"""A stream: (pid, kind, layer)."""


class Failure(StrEnum):
    """Why a stream was condemned, or a sender id reported."""

    BAD_SIGNATURE = "bad_signature"
    FORGED_FRAME = "forged_frame"
    UNSIGNED = "unsigned"


@dataclass(frozen=True, slots=True)
class Forgery:
    """Something claiming ``stream`` (pid, kind, layer) came on node sender id ``sender``,
    which is not that pid's: ``sender``'s forgery, for ``reason`` (a failing signature, or
    frames). ``pid`` is the participant ``sender`` is tied to (its own verified signatures
    arrive there), or None."""

    sender: int
    stream: Stream
    pid: int | None
    reason: Failure = Failure.BAD_SIGNATURE


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
        self._owners: dict[int, int] = {}  # sender id -> the pid last tied to it
        self._seen: dict[int, dict[bytes, None]] = {}
        self._carriers: dict[int, dict[int, None]] = {}
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

    def foreign(self, pid: int, sender: int | None) -> bool:
        """Whether a frame of ``pid`` that came on ``sender`` is not the pid's own: ``pid``
        is tied to another sender id, or ``sender`` to another pid (module docstring).
        None (unknown) is never foreign."""
        if sender is None:
            return False
        tie = self._ties.get(pid)
        if tie is not None:
            return tie.sender != sender
        return self._owners.get(sender, pid) != pid

    def owner(self, sender: int) -> int | None:
        """The pid tied to ``sender``, if any."""
        return self._owners.get(sender)

    def carried(self, pid: int, sender: int) -> bool:
        """Whether ``sender`` carried a verified signature of ``pid`` (one of its
        connections, tied or not)."""
        return sender in self._carriers.get(pid, {})

    def verified(self, pid: int, sender: int | None, ident: bytes, now: int) -> bool:
        """A fresh signature of ``pid`` verified on ``sender``: remembered, and ``pid`` tied
        to ``sender`` if it is tied to none, to it already, or to one quiet for
        :data:`RETIE_QUIET_MS`. Whether the tie moved (or was made)."""
        seen = self._seen.setdefault(pid, {})
        seen[ident] = None
        if len(seen) > MAX_SEEN:
            del seen[next(iter(seen))]
        if sender is None:
            return False
        carriers = self._carriers.setdefault(pid, {})
        carriers.pop(sender, None)
        carriers[sender] = None
        if len(carriers) > MAX_CARRIERS:
            del carriers[next(iter(carriers))]
        tie = self._ties.get(pid)
        if tie is None or tie.sender == sender or now - tie.fresh >= RETIE_QUIET_MS:
            self._ties[pid] = _Tie(sender, now)
            if tie is not None and self._owners.get(tie.sender) == pid:
                del self._owners[tie.sender]
            self._owners[sender] = pid
            return tie is None or tie.sender != sender
        return False

    def blame(self, stream: Stream, sender: int) -> Forgery | None:
        """A signature claiming ``stream`` failed on ``sender``, not its pid's: a report the
        first time ``sender`` does so, else None."""
        if sender in self._forgers:
            return None
        self._forgers.add(sender)
        return Forgery(sender, stream, self._owners.get(sender))


class FrameClaims:
    """Foreign frames (:meth:`SenderTies.foreign`) by the sender id that carried them, and
    the :class:`Forgery` reports they make (module docstring)."""

    def __init__(self, ties: SenderTies) -> None:
        self._ties = ties
        self._open: dict[tuple[int, int], tuple[Stream, int]] = {}  # (sender, pid) -> claim
        self._reported: set[tuple[int, int]] = set()

    def claim(self, stream: Stream, sender: int, arrived: int) -> Forgery | None:
        """A foreign frame of ``stream`` that came on ``sender`` at ``arrived``: a report now
        if ``sender`` is tied to another pid, else maybe later (:meth:`due`)."""
        at = (sender, stream[0])
        if at in self._reported or at in self._open:
            return None
        if self._ties.owner(sender) not in (None, stream[0]):
            return self._report(at, stream)
        self._open[at] = (stream, arrived)
        if len(self._open) > MAX_CLAIMS:
            oldest = next(iter(self._open))
            return self._decide(oldest, self._open.pop(oldest)[0])
        return None

    def due(self, now: int) -> list[Forgery]:
        """The claims :data:`CLAIM_BOUND_MS` old, decided: a report for each whose sender
        id never carried a verified signature of the pid it claimed."""
        old = [at for at, (_, t) in self._open.items() if now - t >= CLAIM_BOUND_MS]
        out = [self._decide(at, self._open.pop(at)[0]) for at in old]
        return [forgery for forgery in out if forgery is not None]

    def _decide(self, at: tuple[int, int], stream: Stream) -> Forgery | None:
        sender, pid = at
        return None if self._ties.carried(pid, sender) else self._report(at, stream)

    def _report(self, at: tuple[int, int], stream: Stream) -> Forgery:
        self._reported.add(at)
        return Forgery(at[0], stream, self._ties.owner(at[0]), Failure.FORGED_FRAME)
