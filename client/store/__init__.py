"""The client state store (DESIGN section 4, "Client state").

StateStore                     the protocol: get / put / delete / items / put_many,
                               transaction(), close(), over namespaces ``NS_*``
MemoryStore()                  in memory, for tests
SqliteStore.open(path, pw)     one SQLite file, encrypted at rest (see ``sqlite``)
"""

from client.store.base import (
    NAMESPACES,
    NS_ACCOUNT,
    NS_CERTS,
    NS_CONTACTS,
    NS_IDENTITIES,
    NS_MESSAGES,
    NS_META,
    NS_PREKEYS,
    NS_SEEN,
    NS_SESSIONS,
    StateStore,
)
from client.store.memory import MemoryStore
from client.store.sqlite import ScryptParams, SqliteStore

__all__ = [
    "NAMESPACES",
    "NS_ACCOUNT",
    "NS_CERTS",
    "NS_CONTACTS",
    "NS_IDENTITIES",
    "NS_MESSAGES",
    "NS_META",
    "NS_PREKEYS",
    "NS_SEEN",
    "NS_SESSIONS",
    "MemoryStore",
    "ScryptParams",
    "SqliteStore",
    "StateStore",
]
