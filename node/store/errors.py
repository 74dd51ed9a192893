"""Errors of the storage backends::

    StoreError            the backend cannot do what was asked (I/O error, disk full,
     │                    database locked for too long, a file from a newer version)
     ├── StoreClosed      the store was closed, or its worker threads are gone
     ├── StoreFull        no space for the write: the disk (SQLite) or ``maxmemory``
     │                    (Redis) is full; nothing of the write was applied
     └── StoreUnavailable the store did not answer (Redis unreachable past its retries)

    PlacementInvalid      (a ``ValueError``) a ``MediaPlacement`` call broke a bound of
                          ``node.store.placement``: the caller's bug, never the backend's;
                          nothing was written. ``code`` is one of the PLACEMENT_* below.

A method's ordinary "no" (an unknown invite, a spent grant) is a return value, never one
of these. No message carries a key, a token hash or an envelope body.

Codes of :class:`PlacementInvalid` (stable; logged, never sent to a client or a peer):

    placement.room       a room id is not ROOM_BYTES (16) bytes
    placement.replica    a replica id is empty or longer than MAX_REPLICA_BYTES (32)
    placement.address    a media address is not a literal, usable IP address
    placement.port       a media port is outside 1..65535
    placement.time       a time or a TTL is not an int within its bounds
"""

from __future__ import annotations

from typing import Final

PLACEMENT_ROOM: Final = "placement.room"
PLACEMENT_REPLICA: Final = "placement.replica"
PLACEMENT_ADDRESS: Final = "placement.address"
PLACEMENT_PORT: Final = "placement.port"
PLACEMENT_TIME: Final = "placement.time"


class StoreError(Exception):
    """The backend failed; the operation may not have been applied."""


class StoreClosed(StoreError):
    """The store is closed."""


class StoreFull(StoreError):
    """No space left for the write (it was not applied); reads still work."""


class StoreUnavailable(StoreError):
    """The store did not answer in time; the operation may or may not have been applied
    (a retried write is idempotent)."""


class PlacementInvalid(ValueError):
    """A ``MediaPlacement`` argument broke its bound (``code`` says which; the message
    names the rule, never the value of a room id)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
