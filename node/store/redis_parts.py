"""What every port of the Redis backend (``node.store.redis``) shares: the client (its
retries, scripts and ``WAIT``: ``node.store.redis_client``), the key prefix, this replica's
id and the push channel, with the push notice's format (``node.cluster`` reads it)."""

from __future__ import annotations

from typing import Any, Final

from node.store.redis_client import RedisClient

REPLICA_ID_BYTES: Final = 8
PUSH_ENVELOPE: Final = b"E"  # a push notice: b"E" + replica id + len + mailbox + seq (ASCII)
PUSH_CLAIM: Final = b"C"  # a mailbox claim: b"C" + replica id + len + mailbox


class RedisParts:
    """The connection and key layout a port implementation runs on;
    :class:`~node.store.redis.RedisStore` sets them once for all its ports."""

    _redis: RedisClient
    _prefix: bytes
    replica_id: bytes
    outbound_lease_ms: int
    push_channel: bytes

    def _key(self, *parts: bytes | str) -> bytes:
        return self._prefix + b"".join(p.encode() if isinstance(p, str) else p for p in parts)

    async def _run(self, name: str, keys: list[bytes], args: list[Any], *, write: bool) -> Any:
        return await self._redis.run(name, keys, args, write=write)


def push_notice(replica_id: bytes, mailbox: bytes, kind: bytes = PUSH_ENVELOPE) -> bytes:
    """The start of a message on :attr:`RedisStore.push_channel` (see ``node.cluster``)."""
    return kind + replica_id + bytes([len(mailbox)]) + mailbox


def parse_push(message: bytes) -> tuple[bytes, bytes, bytes, int]:
    """``(kind, replica id, mailbox, seq)`` of a push-channel message (seq 0 for a claim);
    ``ValueError`` if it is malformed."""
    kind, rest = message[:1], message[1:]
    if kind not in (PUSH_ENVELOPE, PUSH_CLAIM) or len(rest) < REPLICA_ID_BYTES + 1:
        raise ValueError("not a push notice")
    replica, size = rest[:REPLICA_ID_BYTES], rest[REPLICA_ID_BYTES]
    mailbox = rest[REPLICA_ID_BYTES + 1 : REPLICA_ID_BYTES + 1 + size]
    tail = rest[REPLICA_ID_BYTES + 1 + size :]
    if len(mailbox) != size or (kind == PUSH_CLAIM and tail):
        raise ValueError("not a push notice")
    if kind == PUSH_CLAIM:
        return kind, replica, mailbox, 0
    if not tail.isdigit():
        raise ValueError("not a push notice")
    return kind, replica, mailbox, int(tail)
