"""Errors of the meeting cores (``client.meetings``).

    MeetingError           base; every error has a stable ``code``
    ├── MeetingKeyError    an epoch secret of the wrong size, an epoch this participant does
    │                      not hold, a ratchet step it cannot take (a gap in epochs)
    ├── RosterError        a roster that does not verify: bad signature, another meeting, a
    │                      leader key that is not the leader's entry's, an epoch that does
    │                      not move forward, a leader that is not the rightful successor, a
    │                      roster whose hash or epoch is not its key message's
    └── MeetingShapeError  a key schedule message of an older shape (``MeetingEpoch`` with
                           the whole roster inside): refused, ``meeting.old_shape``

Frames whose sender authentication fails are not errors: ``client.meetings.frameauth``
reports the stream.
"""

from __future__ import annotations


class MeetingError(Exception):
    """Base class; ``code`` is stable and safe to report."""

    code = "meeting.error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code)


class MeetingKeyError(MeetingError):
    code = "meeting.bad_key"


class RosterError(MeetingError):
    code = "meeting.bad_roster"


class MeetingShapeError(MeetingError):
    code = "meeting.old_shape"
