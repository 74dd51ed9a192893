"""The node's storage (DESIGN section 5): small ports, their records and three backends.

Accounts, Prekeys, Mailboxes, Blobs,    the ports, one Protocol each (``ports``)
OutboundQueue, ReplayGuard, Maintenance,
CallLegs, GroupTokens, MediaPlacement
Store, Storage                          every port (a backend), and the bundle of ports
DeviceRecord, PrekeyRecord,             the records (``base``)
BundleParts, StoredEnvelope, SweepResult,
OutboundItem, LegRecord, MediaAddress
StoreError, StoreClosed, StoreFull,     backend failures (``errors``)
StoreUnavailable
PlacementInvalid                        a MediaPlacement argument out of bounds (``errors``,
                                        ``placement``), a ValueError with a stable code
MemoryStore()                           in memory, for unit tests (``memory``)
await SqliteStore.open(path)            one SQLite file, WAL, group commit (``sqlite``)
await RedisStore.open(url)              shared Redis for cluster mode, also
await RedisStore.open_sentinel(...)     through Sentinel (``redis``)
await open_store(kind, data_dir, ...)   any of them, by name, as the node's configuration says
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from node.store.base import (
    BundleParts,
    DeviceRecord,
    LegRecord,
    MediaAddress,
    OutboundItem,
    PrekeyRecord,
    StoredEnvelope,
    SweepResult,
)
from node.store.errors import (
    PlacementInvalid,
    StoreClosed,
    StoreError,
    StoreFull,
    StoreUnavailable,
)
from node.store.memory import MemoryStore
from node.store.ports import (
    Accounts,
    Blobs,
    CallLegs,
    GroupTokens,
    Mailboxes,
    Maintenance,
    MediaPlacement,
    OutboundQueue,
    Prekeys,
    ReplayGuard,
    Storage,
    Store,
)
from node.store.redis import RedisStore
from node.store.sqlite import SqliteStore

SQLITE_FILENAME: Final = "node.sqlite3"
KINDS: Final = ("memory", "sqlite", "redis")


def sqlite_path(data_dir: Path | str) -> Path:
    """Where the node's SQLite database lives in ``data_dir``."""
    return Path(data_dir) / SQLITE_FILENAME


async def open_store(
    kind: str,
    data_dir: Path | str | None = None,
    *,
    synchronous: str = "FULL",
    redis_url: str = "",
    redis_sentinels: Sequence[tuple[str, int]] = (),
    redis_master: str = "sealrelay",
    durability: str = "primary",
) -> Store:
    """Open the backend named ``kind`` ("memory", "sqlite" or "redis"). "sqlite" needs
    ``data_dir`` and uses ``data_dir/node.sqlite3``; "redis" needs ``redis_sentinels``
    (then ``redis_master`` names the service) or else ``redis_url``, and takes
    ``durability`` ("primary" or "replicated"). ``ValueError`` for anything else."""
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        if redis_sentinels:
            return await RedisStore.open_sentinel(
                list(redis_sentinels), redis_master, durability=durability
            )
        if not redis_url:
            raise ValueError("the redis store needs redis_url or redis_sentinels")
        return await RedisStore.open(redis_url, durability=durability)
    if kind == "sqlite":
        if data_dir is None:
            raise ValueError("the sqlite store needs a data directory")
        return await SqliteStore.open(sqlite_path(data_dir), synchronous=synchronous)
    raise ValueError(f"unknown store kind {kind!r}; expected one of {', '.join(KINDS)}")


__all__ = [
    "KINDS",
    "SQLITE_FILENAME",
    "Accounts",
    "Blobs",
    "BundleParts",
    "CallLegs",
    "DeviceRecord",
    "GroupTokens",
    "LegRecord",
    "Mailboxes",
    "Maintenance",
    "MediaAddress",
    "MediaPlacement",
    "MemoryStore",
    "OutboundItem",
    "OutboundQueue",
    "PlacementInvalid",
    "PrekeyRecord",
    "Prekeys",
    "RedisStore",
    "ReplayGuard",
    "SqliteStore",
    "Storage",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "StoredEnvelope",
    "SweepResult",
    "open_store",
    "sqlite_path",
]
