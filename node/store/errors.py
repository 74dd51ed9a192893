"""Errors of the storage backends::

    StoreError            the backend cannot do what was asked (I/O error, disk full,
     │                    database locked for too long, a file from a newer version)
     ├── StoreClosed      the store was closed, or its worker threads are gone
     ├── StoreFull        no space for the write: the disk (SQLite) or ``maxmemory``
     │                    (Redis) is full; nothing of the write was applied
     └── StoreUnavailable the store did not answer (Redis unreachable past its retries)

A method's ordinary "no" (an unknown invite, a spent grant) is a return value, never one
of these. No message carries a key, a token hash or an envelope body.
"""

from __future__ import annotations


class StoreError(Exception):
    """The backend failed; the operation may not have been applied."""


class StoreClosed(StoreError):
    """The store is closed."""


class StoreFull(StoreError):
    """No space left for the write (it was not applied); reads still work."""


class StoreUnavailable(StoreError):
    """The store did not answer in time; the operation may or may not have been applied
    (a retried write is idempotent)."""
