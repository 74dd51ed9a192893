"""The storage contract's shared pieces: records, the backends and their fixtures.

The contract is one test module per port (``test_<port>_contract.py``: accounts, prekeys,
mailboxes with its fan-out modules, blobs, outbound, replay, maintenance); each test takes
the port it checks (or the ``storage`` bundle when it needs several) and runs against
every backend alike: memory, SQLite and Redis, the last against one real
``redis-server`` per session, each test under a fresh key prefix. The fixtures are
served to the contract modules by ``conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import pytest

from node.store import (
    Accounts,
    Blobs,
    DeviceRecord,
    Mailboxes,
    Maintenance,
    MemoryStore,
    OutboundQueue,
    PrekeyRecord,
    Prekeys,
    RedisStore,
    ReplayGuard,
    SqliteStore,
    Storage,
    Store,
    StoredEnvelope,
)
from tests.node.harness import eid
from tests.redisproc import RedisServer

_MEMORY_IS_A_STORE: type[Store] = MemoryStore  # mypy checks each against every port
_SQLITE_IS_A_STORE: type[Store] = SqliteStore
_REDIS_IS_A_STORE: type[Store] = RedisStore

BACKENDS: Final = ("memory", "sqlite", "redis")
NOW = 1_700_000_000_000
HOUR = 3_600_000
MAILBOX = b"M" * 16
OTHER_MAILBOX = b"N" * 16

__all__ = ["eid"]  # the envelope ids the contract uses, for the cluster tests too


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole session; tests separate by key prefix."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def fresh_prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


async def open_backend(kind: str, directory: Path, redis_url: str | None = None) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        assert redis_url is not None
        return await RedisStore.open(redis_url, prefix=fresh_prefix())
    return await SqliteStore.open(directory / "node.sqlite3")


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each backend in turn, opened fresh and closed after the test."""
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    s = await open_backend(request.param, tmp_path, url)
    yield s
    await s.aclose()


@pytest.fixture
def storage(backend: Store) -> Storage:
    return Storage.of(backend)


@pytest.fixture
def accounts(storage: Storage) -> Accounts:
    return storage.accounts


@pytest.fixture
def prekeys_port(storage: Storage) -> Prekeys:
    return storage.prekeys


@pytest.fixture
def mailboxes(storage: Storage) -> Mailboxes:
    return storage.mailboxes


@pytest.fixture
def blobs(storage: Storage) -> Blobs:
    return storage.blobs


@pytest.fixture
def outbound(storage: Storage) -> OutboundQueue:
    return storage.outbound


@pytest.fixture
def replay(storage: Storage) -> ReplayGuard:
    return storage.replay


@pytest.fixture
def maintenance(storage: Storage) -> Maintenance:
    return storage.maintenance


def device(
    address: str = "alice@a.example", number: int = 1, mailbox: bytes = MAILBOX
) -> DeviceRecord:
    return DeviceRecord(
        address=address,
        device=number,
        identity=b"id:" + address.encode(),
        mailbox=mailbox,
        created=NOW,
    )


def envelope(
    eid: bytes, mailbox: bytes = MAILBOX, expires: int = NOW + HOUR, body: bytes = b"sealed"
) -> StoredEnvelope:
    return StoredEnvelope(
        mailbox=mailbox,
        eid=eid,
        seq=0,
        ts=NOW,
        expires=expires,
        origin="b.example",
        sender=None,
        body=body,
    )


def prekeys(dh: range = range(0), kem: range = range(0), tag: bytes = b"") -> PrekeyRecord:
    return PrekeyRecord(
        identity=b"identity",
        signed_prekey=b"spk" + tag,
        last_resort=b"last-resort" + tag,
        sealed_key=b"sealed" + tag,
        one_time={i: b"dh%d" % i for i in dh},
        kem_one_time={i: b"kem%d" % i for i in kem},
    )


async def registered(
    accounts: Accounts, name: str = "alice", mailbox: bytes = MAILBOX
) -> DeviceRecord:
    code = b"code:" + name.encode()
    await accounts.add_invite(code, name, NOW + HOUR)
    record = device(f"{name}@a.example", 1, mailbox)
    assert await accounts.register(code, name, record, NOW)
    return record
