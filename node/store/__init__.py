"""The node's storage (DESIGN section 5): the :class:`Store` Protocol and its backends.

Store, DeviceRecord, PrekeyRecord,      the interface and its records (``base``)
BundleParts, StoredEnvelope, SweepResult
MemoryStore()                           in memory, for unit tests (``memory``)
"""

from node.store.base import (
    BundleParts,
    DeviceRecord,
    PrekeyRecord,
    Store,
    StoredEnvelope,
    SweepResult,
)
from node.store.memory import MemoryStore

__all__ = [
    "BundleParts",
    "DeviceRecord",
    "MemoryStore",
    "PrekeyRecord",
    "Store",
    "StoredEnvelope",
    "SweepResult",
]
