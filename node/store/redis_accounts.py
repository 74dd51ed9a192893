"""The Redis backend's :class:`~node.store.ports.Accounts` and
:class:`~node.store.ports.Prekeys` (scripts in ``node.store.redis_scripts``)."""

from __future__ import annotations

from typing import Any

import msgpack

from node.store.base import BundleParts, DeviceRecord, PrekeyRecord
from node.store.redis_parts import RedisParts


class RedisAccounts(RedisParts):
    """Invites, devices, delivery-token verifiers and introductions."""

    async def add_invite(self, code_hash: bytes, name: str, expires: int) -> None:
        keys = [self._key("inv"), self._key("inv:exp")]
        await self._run("add_invite", keys, [code_hash, name, expires], write=True)

    async def register(self, code_hash: bytes, name: str, device: DeviceRecord, now: int) -> bool:
        keys = [
            self._key("inv"),
            self._key("inv:exp"),
            self._key("dev:", device.address),
            self._key("mbox"),
            self._key("addrs"),
        ]
        args = [code_hash, name, now, device.mailbox, device.device, _pack_device(device)]
        args.append(device.address)
        return bool(await self._run("register", keys, args, write=True))

    async def device(self, address: str, device: int) -> DeviceRecord | None:
        key = self._key("dev:", address)
        packed = await self._redis.read("device", lambda c: c.hget(key, str(device)))
        return None if packed is None else _unpack_device(packed)

    async def has_account(self, name: str) -> bool:
        key, pattern = self._key("addrs"), f"{name}@*"  # names hold no glob characters

        async def scan(client: Any) -> bool:
            cursor = 0
            while True:
                cursor, found = await client.sscan(key, cursor, match=pattern, count=1000)
                if found or not cursor:
                    return bool(found)

        found: bool = await self._redis.read("has_account", scan)
        return found

    async def devices(self, address: str) -> list[DeviceRecord]:
        key = self._key("dev:", address)
        found = await self._redis.read("devices", lambda c: c.hgetall(key))
        return sorted((_unpack_device(v) for v in found.values()), key=lambda d: d.device)

    async def mailbox_owner(self, mailbox: bytes) -> DeviceRecord | None:
        key = self._key("mbox")
        packed = await self._redis.read("mailbox_owner", lambda c: c.hget(key, mailbox))
        return None if packed is None else _unpack_device(packed)

    async def set_token_verifier(self, address: str, verifier: bytes) -> None:
        await self._set_field("verifier", address, verifier)

    async def token_verifier(self, address: str) -> bytes | None:
        key = self._key("verifier")
        found: bytes | None = await self._redis.read(
            "token_verifier", lambda c: c.hget(key, address)
        )
        return found

    async def set_accepts_introductions(self, address: str, accept: bool) -> None:
        await self._set_field("intro", address, b"1" if accept else b"0")

    async def accepts_introductions(self, address: str) -> bool:
        key = self._key("intro")
        found = await self._redis.read("accepts_introductions", lambda c: c.hget(key, address))
        return bool(found == b"1")

    async def _set_field(self, table: str, field: str, value: bytes) -> None:
        key = self._key(table)
        await self._redis.write(table, lambda c: c.hset(key, {field: value}))


class RedisPrekeys(RedisParts):
    """Published keys; one-time keys popped by one script, so never handed out twice."""

    def _device_keys(self, address: str, device: int) -> list[bytes]:
        dev = address.encode() + b"\x00" + str(device).encode()
        return [self._key(kind, dev) for kind in ("pk:", "otk:", "kotk:", "seen:")]

    async def put_prekeys(self, address: str, device: int, record: PrekeyRecord) -> None:
        args: list[Any] = [
            record.identity,
            record.signed_prekey,
            record.last_resort,
            record.sealed_key,
        ]
        for keys in (record.one_time, record.kem_one_time):
            args.append(len(keys))
            for key_id, key in sorted(keys.items()):
                args += [_key_id(key_id), key]
        await self._run("put_prekeys", self._device_keys(address, device), args, write=True)

    async def take_bundle(self, address: str, device: int) -> BundleParts | None:
        keys = self._device_keys(address, device)[:3]
        found = await self._run("take_bundle", keys, [], write=True)
        if found is None:
            return None
        identity, signed_prekey, sealed_key, last_resort, one_time, kem = found
        return BundleParts(
            identity=identity,
            signed_prekey=signed_prekey,
            sealed_key=sealed_key,
            one_time=None if one_time is None else one_time[8:],
            kem_prekey=last_resort if kem is None else kem[8:],
            kem_last_resort=kem is None,
        )

    async def prekey_counts(self, address: str, device: int) -> tuple[int, int]:
        _, dh, kem, _ = self._device_keys(address, device)

        async def counts() -> tuple[int, int]:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                a, b = pipe.zcard(dh), pipe.zcard(kem)
            return await a, await b

        return await self._redis.call("prekey_counts", counts)


def _key_id(key_id: int) -> bytes:
    if not 0 <= key_id < 1 << 64:
        raise ValueError(f"prekey id {key_id} is outside 0..2**64-1")
    return key_id.to_bytes(8, "big")


def _pack_device(d: DeviceRecord) -> bytes:
    packed: bytes = msgpack.packb([d.address, d.device, d.identity, d.mailbox, d.created])
    return packed


def _unpack_device(packed: bytes) -> DeviceRecord:
    address, device, identity, mailbox, created = msgpack.unpackb(packed)
    return DeviceRecord(address, device, identity, mailbox, created)
