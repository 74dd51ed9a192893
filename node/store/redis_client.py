"""The trio shell of :class:`~node.store.redis.RedisStore`: one coredis client, its retry
policy, its scripts and its durability (``WAIT``), with Redis errors translated into
:class:`~node.store.errors.StoreError` here and nowhere else.

    redis = await RedisClient.open(url, durability="primary")      # or .open_sentinel(...)
    await redis.run("enqueue", keys, args, write=True)             # a script of redis_scripts
    await redis.read("device", lambda c: c.hget(key, field))      # one read command
    await redis.aclose()

coredis runs under trio through anyio, and its client must be used inside its async
context (the connection tasks live in it). :meth:`RedisClient.open` enters that context in
a trio system task that lives until :meth:`aclose`, so the client can be opened and closed
by different tasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Final, TypeVar

import anyio
import coredis
import trio
from coredis.connection import TCPLocation
from coredis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from coredis.exceptions import (
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    SentinelError,
)
from coredis.retry import ExponentialBackoffRetryPolicy, NoRetryPolicy

from node.store import redis_scripts as lua
from node.store.errors import StoreClosed, StoreError, StoreFull, StoreUnavailable

DURABILITIES: Final = ("primary", "replicated")
DEFAULT_RETRY_FOR: Final = 5.0  # seconds of retrying while Sentinel promotes a replica
DEFAULT_WAIT_TIMEOUT_MS: Final = 1000
CONNECT_TIMEOUT: Final = 1.0
STREAM_TIMEOUT: Final = 10.0
_FIRST_BACKOFF: Final = 0.05
_MAX_BACKOFF: Final = 0.5
# Replies that mean "the primary is changing": retried like a dropped connection.
_TRANSIENT_REPLIES: Final = ("MASTERDOWN", "LOADING", "READONLY", "NOREPLICAS", "TRYAGAIN")
_FULL_REPLY: Final = "OOM"  # maxmemory reached under noeviction: no write is applied
_TRANSIENT: Final = (
    RedisConnectionError,
    ReadOnlyError,
    SentinelError,
    TimeoutError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)

_T = TypeVar("_T")


class RedisClient:
    """Open with :meth:`open` or :meth:`open_sentinel`; close with :meth:`aclose`."""

    def __init__(
        self,
        client: Any,
        contexts: list[Any],
        *,
        durability: str,
        retry_for: float,
        wait_timeout_ms: int,
    ) -> None:
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITIES)}")
        self.client = client  # the coredis client, for attempts that build a pipeline
        self.durability = durability
        self.retry_for = retry_for
        self.wait_timeout_ms = wait_timeout_ms
        self._contexts = contexts
        self._shas = {name: hashlib.sha1(s.encode()).hexdigest() for name, s in lua.ALL.items()}  # noqa: S324 - Redis names scripts by SHA-1
        self._closed = False
        self._host_failed: BaseException | None = None
        self._stop = trio.Event()
        self._stopped = trio.Event()

    # --- opening and closing ---------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        url: str,
        *,
        durability: str = "primary",
        retry_for: float = DEFAULT_RETRY_FOR,
        wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
    ) -> RedisClient:
        """Connect to the Redis at ``url`` (``redis://host:port/db``, ``rediss://`` for
        TLS); :class:`StoreError` if it does not answer within ``retry_for`` seconds."""
        client = coredis.Redis.from_url(
            url,
            decode_responses=False,
            connect_timeout=CONNECT_TIMEOUT,
            stream_timeout=STREAM_TIMEOUT,
            retry_policy=NoRetryPolicy(),
        )
        redis = cls(
            client,
            [client],
            durability=durability,
            retry_for=retry_for,
            wait_timeout_ms=wait_timeout_ms,
        )
        await redis._start()
        return redis

    @classmethod
    async def open_sentinel(
        cls,
        sentinels: Sequence[tuple[str, int]],
        master: str,
        *,
        durability: str = "primary",
        retry_for: float = DEFAULT_RETRY_FOR,
        wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
    ) -> RedisClient:
        """Connect to the primary that the Sentinels ``sentinels`` name for ``master``, and
        follow it through failovers."""
        if not sentinels:
            raise ValueError("at least one sentinel is needed")
        sentinel = coredis.Sentinel(
            [TCPLocation(host, port) for host, port in sentinels],
            sentinel_kwargs={
                "connect_timeout": CONNECT_TIMEOUT,
                "stream_timeout": CONNECT_TIMEOUT,
            },
            retry_policy=NoRetryPolicy(),
            decode_responses=False,
            connect_timeout=CONNECT_TIMEOUT,
            stream_timeout=STREAM_TIMEOUT,
        )
        client = sentinel.primary_for(master)
        redis = cls(
            client,
            [sentinel, client],
            durability=durability,
            retry_for=retry_for,
            wait_timeout_ms=wait_timeout_ms,
        )
        await redis._start()
        return redis

    async def _start(self) -> None:
        ready = trio.Event()
        trio.lowlevel.spawn_system_task(self._host, ready, name="redis-store-host")
        await ready.wait()
        if self._host_failed is not None:
            raise StoreError(f"cannot start the Redis client: {self._host_failed}")
        try:
            await self.call("opening", self._load_scripts)
        except StoreError:
            await self.aclose()
            raise

    async def _host(self, ready: trio.Event) -> None:
        """Holds the coredis contexts (their connection tasks live in it) until closed."""
        try:
            async with AsyncExitStack() as stack:
                for context in self._contexts:
                    await stack.enter_async_context(context)
                ready.set()
                await self._stop.wait()
        except BaseException as exc:  # a system task must not raise
            self._host_failed = exc
        finally:
            self._closed = self._host_failed is not None or self._closed
            ready.set()
            self._stopped.set()

    async def aclose(self) -> None:
        """Close the connections; later calls raise :class:`StoreClosed`."""
        self._closed = True
        self._stop.set()
        await self._stopped.wait()

    def check_open(self) -> None:
        """:class:`StoreClosed` (or :class:`StoreError` if the client died) unless open."""
        if self._host_failed is not None:
            raise StoreError(f"the Redis client stopped: {self._host_failed!r}")
        if self._closed:
            raise StoreClosed("the store is closed")

    # --- the one way to the server ------------------------------------------------------------
    async def call(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``attempt`` with the retry policy of ``node.store.redis``'s docstring."""
        self.check_open()
        deadline = trio.current_time() + self.retry_for
        backoff = _FIRST_BACKOFF
        while True:
            try:
                return await attempt()
            except _TRANSIENT as exc:
                failure: BaseException = exc
            except ResponseError as exc:
                if str(exc).startswith(_FULL_REPLY):
                    raise StoreFull(f"redis is full ({what}): {exc}") from None
                if not str(exc).startswith(_TRANSIENT_REPLIES):
                    raise StoreError(f"redis refused {what}: {exc}") from None
                failure = exc
            except RedisError as exc:
                raise StoreError(f"redis failed {what}: {exc}") from None
            if self._closed:
                raise StoreClosed("the store is closed")
            if trio.current_time() + backoff > deadline:
                raise StoreUnavailable(
                    f"redis unavailable for {what} after {self.retry_for:g} s:"
                    f" {type(failure).__name__}: {failure}"
                ) from None
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def run(self, name: str, keys: list[bytes], args: list[Any], *, write: bool) -> Any:
        """Run script ``name``; a write under "replicated" durability waits for a replica."""
        wait = write and self.durability == "replicated"

        async def attempt() -> Any:
            try:
                return await self._evalsha(name, keys, args, wait)
            except NoScriptError:
                await self._load_scripts()
                return await self._evalsha(name, keys, args, wait)

        return await self.call(name, attempt)

    async def read(self, what: str, command: Callable[[Any], Awaitable[_T]]) -> _T:
        """One read command, ``command(client)``."""
        return await self.call(what, lambda: command(self.client))

    async def write(self, what: str, command: Callable[[Any], Awaitable[Any]]) -> None:
        """One write command, atomic on its own; "replicated" pipelines ``WAIT`` after it."""
        if self.durability != "replicated":
            await self.read(what, command)
            return

        async def attempt() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                command(pipe)
                acked = pipe.wait(1, self.wait_timeout_ms)
            self._confirmed(what, await acked)

        await self.call(what, attempt)

    async def _evalsha(self, name: str, keys: list[bytes], args: list[Any], wait: bool) -> Any:
        sha = self._shas[name]
        if not wait:
            return await self.client.evalsha(sha, keys=keys, args=args)
        async with self.client.pipeline(transaction=False) as pipe:
            result = pipe.evalsha(sha, keys=keys, args=args)
            acked = pipe.wait(1, self.wait_timeout_ms)
        self._confirmed(name, await acked)
        return await result

    def _confirmed(self, what: str, replicas: int) -> None:
        if replicas < 1:
            raise StoreError(
                f"{what}: no replica confirmed the write within {self.wait_timeout_ms} ms"
                " (it is on the primary only)"
            )

    async def _load_scripts(self) -> None:
        """Load every script in one round trip (after opening, and after ``NOSCRIPT``)."""
        async with self.client.pipeline(transaction=False) as pipe:
            loaded = {name: pipe.script_load(source) for name, source in lua.ALL.items()}
        for name, sha in loaded.items():
            found = await sha
            self._shas[name] = found.decode() if isinstance(found, bytes) else found

    # --- pub/sub ---------------------------------------------------------------------------
    def subscribe(self, channel: bytes) -> AbstractAsyncContextManager[Any]:
        """A coredis ``PubSub`` on ``channel``; enter it in the task that reads it.

        It yields messages (dicts) with ``type`` and ``data``: a "subscribe" message when
        the subscription is in place, again after coredis re-established it (messages
        published meanwhile are lost), and "message" for each message. Reconnection is
        retried without end (backoff up to 2 s)."""
        retry = ExponentialBackoffRetryPolicy(
            (RedisConnectionError, SentinelError, TimeoutError),
            retries=None,
            base_delay=0.1,
            max_delay=2,
            jitter=True,
        )
        pubsub: AbstractAsyncContextManager[Any] = self.client.pubsub(
            channels=[channel], retry_policy=retry
        )
        return pubsub

    async def publish(self, channel: bytes, message: bytes) -> None:
        await self.call("publish", lambda: self.client.publish(channel, message))
