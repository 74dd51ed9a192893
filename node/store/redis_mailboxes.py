"""The Redis backend's :class:`~node.store.ports.Mailboxes` (scripts in
``node.store.redis_scripts_mailboxes``): one script, so one round trip, per envelope or
per fan-out; each stored envelope's push notice is published by the same script."""

from __future__ import annotations

import secrets
from typing import Any

import msgpack

from node.store.base import StoredEnvelope
from node.store.redis_parts import PUSH_ENVELOPE, RedisParts, push_notice


class RedisMailboxes(RedisParts):
    """Enqueue (one, many, shared), pending, count and ack."""

    def _mailbox_keys(self, mailbox: bytes) -> tuple[bytes, bytes, bytes]:
        if len(mailbox) > 255:
            raise ValueError("a mailbox id is at most 255 bytes")
        return self._key("q:", mailbox), self._key("b:", mailbox), bytes([len(mailbox)]) + mailbox

    async def enqueue(self, envelope: StoredEnvelope) -> tuple[bool, int]:
        queue, bodies, member = self._mailbox_keys(envelope.mailbox)
        keys = [self._key("seq"), queue, bodies, self._key("env:exp"), self._key("tomb:exp")]
        packed = msgpack.packb(
            [envelope.ts, envelope.expires, envelope.origin, envelope.sender, envelope.body]
        )
        notice = push_notice(self.replica_id, envelope.mailbox)
        args = [envelope.eid, member + envelope.eid, envelope.expires, packed]
        args += [self.push_channel, notice]
        stored, seq = await self._run("enqueue", keys, args, write=True)
        return bool(stored), int(seq)

    async def enqueue_many(self, envelopes: list[StoredEnvelope]) -> list[tuple[bool, int]]:
        """Each envelope with its own script, in order (one round trip each): a failure
        part way leaves the earlier ones stored, which a retry of the same eids finds as
        duplicates."""
        return [await self.enqueue(envelope) for envelope in envelopes]

    async def enqueue_shared(
        self, body: bytes, envelopes: list[StoredEnvelope]
    ) -> list[tuple[bool, int]]:
        if not envelopes:
            self._redis.check_open()
            return []
        keys = [self._key("seq"), self._key("tomb:exp"), self._key("env:exp"), self._key("sbodies")]
        notice = PUSH_ENVELOPE + self.replica_id
        args: list[Any] = [self._prefix, secrets.token_bytes(16), body, self.push_channel, notice]
        for env in envelopes:
            self._mailbox_keys(env.mailbox)  # checks the mailbox id's length
            packed = msgpack.packb([env.ts, env.expires, env.origin, env.sender, b""])
            args += [env.mailbox, env.eid, env.expires, packed]
        flat = await self._run("enqueue_shared", keys, args, write=True)
        return [(bool(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def enqueue_shared_many(
        self, items: list[tuple[bytes, list[StoredEnvelope]]]
    ) -> list[list[tuple[bool, int]]]:
        """One script per item, in order (see :meth:`enqueue_many`)."""
        return [await self.enqueue_shared(body, envelopes) for body, envelopes in items]

    async def pending(
        self, mailbox: bytes, after_seq: int, limit: int, now: int
    ) -> list[StoredEnvelope]:
        if limit <= 0:
            return []
        queue, bodies, member = self._mailbox_keys(mailbox)
        keys = [queue, bodies, self._key("env:exp"), self._key("bref:", mailbox)]
        args = [after_seq, limit, now, member, self._prefix]
        flat = await self._run("pending", keys, args, write=False)
        out = []
        for i in range(0, len(flat), 4):
            eid, seq, packed, shared = flat[i : i + 4]
            ts, expires, origin, sender, body = msgpack.unpackb(packed)
            body = body if shared is None else shared
            out.append(StoredEnvelope(mailbox, eid, int(seq), ts, expires, origin, sender, body))
        return out

    async def count_pending(self, mailbox: bytes, now: int) -> int:
        queue, _, member = self._mailbox_keys(mailbox)
        keys = [queue, self._key("env:exp")]
        return int(await self._run("count_pending", keys, [member, now], write=False))

    async def ack(self, mailbox: bytes, eids: list[bytes]) -> int:
        self._redis.check_open()
        if not eids:
            return 0
        queue, bodies, member = self._mailbox_keys(mailbox)
        keys = [queue, bodies, self._key("env:exp"), self._key("tomb:exp")]
        keys += [self._key("bref:", mailbox), self._key("sbodies")]
        return int(await self._run("ack", keys, [member, self._prefix, *eids], write=True))
