"""Errors of the call media core (``client.calls``).

    CallError              base; every error has a stable ``code``
    ├── FixtureError       a media fixture file that is truncated, of another version, or
    │                      whose frames do not match their SHA-256 digests
    └── MediaKeyError      a call secret of the wrong size, or a key schedule used out of
                           order (an epoch that goes backwards)

Frames that fail SFrame authentication, repeat a counter or arrive late are not errors: the
receiver drops and counts them (``client.calls.receiver``).
"""

from __future__ import annotations


class CallError(Exception):
    """Base class; ``code`` is stable and safe to report."""

    code = "call.error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code)


class FixtureError(CallError):
    code = "call.bad_fixture"


class MediaKeyError(CallError):
    code = "call.bad_media_key"
