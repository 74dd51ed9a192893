"""The storage contract's fixtures (``contract``): every port over every backend."""

from tests.node.store.contract import (
    accounts,
    backend,
    blobs,
    mailboxes,
    maintenance,
    outbound,
    prekeys_port,
    redis_server,
    replay,
    storage,
)

__all__ = [
    "accounts",
    "backend",
    "blobs",
    "mailboxes",
    "maintenance",
    "outbound",
    "prekeys_port",
    "redis_server",
    "replay",
    "storage",
]
