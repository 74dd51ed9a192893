"""The SQLite backend's :class:`~node.store.ports.Accounts` and
:class:`~node.store.ports.Prekeys` (tables in ``node.store.sqlite_schema``)."""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Final

from node.store.base import BundleParts, DeviceRecord, PrekeyRecord
from node.store.sqlite_ops import SqliteParts, execute, select
from node.store.sqlite_schema import KIND_DH, KIND_KEM

_SELECT_DEVICE: Final = "SELECT address, device, identity, mailbox, created FROM devices"


class SqliteAccounts(SqliteParts):
    """Invites, devices, delivery-token verifiers and introductions."""

    async def add_invite(self, code_hash: bytes, name: str, expires: int) -> None:
        await self.writer.run(
            partial(
                execute,
                "INSERT OR REPLACE INTO invites (code_hash, name, expires) VALUES (?, ?, ?)",
                (code_hash, name, expires),
            )
        )

    async def register(self, code_hash: bytes, name: str, device: DeviceRecord, now: int) -> bool:
        return await self.writer.run(partial(_register, code_hash, name, device, now))

    async def device(self, address: str, device: int) -> DeviceRecord | None:
        rows = await self.readers.run(
            partial(
                select,
                _SELECT_DEVICE + " WHERE address = ? AND device = ?",
                (address, device),
            )
        )
        return DeviceRecord(*rows[0]) if rows else None

    async def has_account(self, name: str) -> bool:
        prefix = name + "@"
        query = "SELECT 1 FROM devices WHERE substr(address, 1, ?) = ? LIMIT 1"
        rows = await self.readers.run(partial(select, query, (len(prefix), prefix)))
        return bool(rows)

    async def devices(self, address: str) -> list[DeviceRecord]:
        rows = await self.readers.run(
            partial(
                select,
                _SELECT_DEVICE + " WHERE address = ? ORDER BY device",
                (address,),
            )
        )
        return [DeviceRecord(*row) for row in rows]

    async def mailbox_owner(self, mailbox: bytes) -> DeviceRecord | None:
        rows = await self.readers.run(
            partial(select, _SELECT_DEVICE + " WHERE mailbox = ?", (mailbox,))
        )
        return DeviceRecord(*rows[0]) if rows else None

    async def set_token_verifier(self, address: str, verifier: bytes) -> None:
        await self.writer.run(
            partial(
                execute,
                "INSERT OR REPLACE INTO token_verifiers (address, verifier) VALUES (?, ?)",
                (address, verifier),
            )
        )

    async def token_verifier(self, address: str) -> bytes | None:
        rows = await self.readers.run(
            partial(select, "SELECT verifier FROM token_verifiers WHERE address = ?", (address,))
        )
        return rows[0][0] if rows else None

    async def set_accepts_introductions(self, address: str, accept: bool) -> None:
        await self.writer.run(
            partial(
                execute,
                "INSERT OR REPLACE INTO introductions (address, accept) VALUES (?, ?)",
                (address, int(accept)),
            )
        )

    async def accepts_introductions(self, address: str) -> bool:
        rows = await self.readers.run(
            partial(select, "SELECT accept FROM introductions WHERE address = ?", (address,))
        )
        return bool(rows[0][0]) if rows else False


class SqlitePrekeys(SqliteParts):
    """Published keys; one-time keys taken in the writer, so never handed out twice."""

    async def put_prekeys(self, address: str, device: int, record: PrekeyRecord) -> None:
        await self.writer.run(partial(_put_prekeys, address, device, record))

    async def take_bundle(self, address: str, device: int) -> BundleParts | None:
        return await self.writer.run(partial(_take_bundle, address, device))

    async def prekey_counts(self, address: str, device: int) -> tuple[int, int]:
        rows = await self.readers.run(
            partial(
                select,
                "SELECT kind, count(*) FROM one_time_keys INDEXED BY one_time_keys_left"
                " WHERE address = ? AND device = ?"
                " AND key IS NOT NULL GROUP BY kind",
                (address, device),
            )
        )
        counts = dict(rows)
        return counts.get(KIND_DH, 0), counts.get(KIND_KEM, 0)


# --- operations, run on the writer thread ----------------------------------------------


def _register(
    code_hash: bytes, name: str, device: DeviceRecord, now: int, conn: sqlite3.Connection
) -> bool:
    invite = conn.execute(
        "SELECT name, expires FROM invites WHERE code_hash = ?", (code_hash,)
    ).fetchone()
    if invite is None or invite[0] != name or invite[1] <= now:
        return False
    taken = conn.execute(
        "SELECT 1 FROM devices WHERE address = ? OR mailbox = ? LIMIT 1",
        (device.address, device.mailbox),
    ).fetchone()
    if taken is not None:
        return False
    conn.execute("DELETE FROM invites WHERE code_hash = ?", (code_hash,))
    conn.execute(
        "INSERT INTO devices (address, device, identity, mailbox, created) VALUES (?, ?, ?, ?, ?)",
        (device.address, device.device, device.identity, device.mailbox, device.created),
    )
    return True


def _put_prekeys(address: str, device: int, record: PrekeyRecord, conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO prekeys (address, device, identity, signed_prekey,"
        " last_resort, sealed_key) VALUES (?, ?, ?, ?, ?, ?)",
        (
            address,
            device,
            record.identity,
            record.signed_prekey,
            record.last_resort,
            record.sealed_key,
        ),
    )
    rows = [(address, device, KIND_DH, i, key) for i, key in record.one_time.items()]
    rows += [(address, device, KIND_KEM, i, key) for i, key in record.kem_one_time.items()]
    conn.executemany(
        "INSERT OR IGNORE INTO one_time_keys (address, device, kind, id, key)"
        " VALUES (?, ?, ?, ?, ?)",
        rows,
    )


def _take_bundle(address: str, device: int, conn: sqlite3.Connection) -> BundleParts | None:
    standing = conn.execute(
        "SELECT identity, signed_prekey, last_resort, sealed_key FROM prekeys"
        " WHERE address = ? AND device = ?",
        (address, device),
    ).fetchone()
    if standing is None:
        return None
    identity, signed_prekey, last_resort, sealed_key = standing
    one_time = _take_one_time(conn, address, device, KIND_DH)
    kem = _take_one_time(conn, address, device, KIND_KEM)
    return BundleParts(
        identity=identity,
        signed_prekey=signed_prekey,
        sealed_key=sealed_key,
        one_time=one_time,
        kem_prekey=last_resort if kem is None else kem,
        kem_last_resort=kem is None,
    )


def _take_one_time(conn: sqlite3.Connection, address: str, device: int, kind: int) -> bytes | None:
    """The lowest-id key of ``kind`` left, marked taken (its key cleared, its id kept)."""
    row = conn.execute(
        "SELECT id, key FROM one_time_keys INDEXED BY one_time_keys_left"
        " WHERE address = ? AND device = ? AND kind = ?"
        " AND key IS NOT NULL ORDER BY id LIMIT 1",
        (address, device, kind),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE one_time_keys SET key = NULL WHERE address = ? AND device = ? AND kind = ?"
        " AND id = ?",
        (address, device, kind, row[0]),
    )
    key: bytes = row[1]
    return key
