"""Real ``redis-server`` processes on free loopback ports, for tests.

    with RedisServer(tmp_path / "redis") as server:       # started, answers PING (a
                                                           # replica: and is in sync)
        url = server.url                                   # redis://127.0.0.1:PORT/0
        server.kill()                                      # SIGKILL; server.stop() is SIGTERM
        server.pause(); server.resume()                    # SIGSTOP / SIGCONT: unreachable

    with SentinelSet(tmp_path / "ha") as ha:               # 1 primary, 1 replica, 3 sentinels
        ha.sentinels, ha.master                            # what RedisStore.open_sentinel takes
        ha.kill_primary(); ha.wait_for_new_primary()       # a failover, bounded

Nothing is persisted (``--save "" --appendonly no``): these servers hold test data only.
``command()`` talks RESP over a plain socket, so the helpers need no client library and
can run outside trio (they are used from synchronous, session-scoped fixtures).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final

LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT: Final = 15.0
MASTER_NAME: Final = "sealrelay"
DOWN_AFTER_MS: Final = 1000


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not on PATH (.ci/run installs it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def command(port: int, *args: str | int, timeout: float = 2.0) -> Any:
    """Send one command to ``127.0.0.1:port``; its decoded reply (errors as ``RuntimeError``)."""
    parts = [str(a).encode() for a in args]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(request)
        reader = sock.makefile("rb")
        return _read_reply(reader)


def _read_reply(reader: Any) -> Any:
    line: bytes = reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data: bytes = reader.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(reader) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line!r}")


def info(port: int, section: str) -> dict[str, str]:
    text: str = command(port, "INFO", section)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: v for k, v in pairs}


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, RuntimeError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """One ``redis-server`` (or ``--sentinel``) process in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        replica_of: int | None = None,
        sentinel_conf: str | None = None,
        port: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.replica_of = replica_of
        self.sentinel_conf = sentinel_conf
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [redis_server_binary()]
        if self.sentinel_conf is not None:
            conf = self.directory / "sentinel.conf"
            conf.write_text(f"port {self.port}\n{self.sentinel_conf}")
            argv += [str(conf), "--sentinel"]
        else:
            argv += ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
            if self.replica_of is not None:
                argv += ["--replicaof", LOOPBACK, str(self.replica_of)]
        argv += ["--port", str(self.port), "--bind", LOOPBACK, "--daemonize", "no"]
        argv += ["--dir", str(self.directory), "--logfile", "redis.log"]
        self.proc = subprocess.Popen(argv, cwd=self.directory)
        wait_until(lambda: command(self.port, "PING") == "PONG", START_TIMEOUT, "redis PING")
        if self.replica_of is not None:
            wait_until(self.in_sync, START_TIMEOUT, "the replica to sync")
        return self

    def in_sync(self) -> bool:
        """A replica whose link to its primary is up (the initial sync is done)."""
        return info(self.port, "replication").get("master_link_status") == "up"

    def kill(self) -> None:
        """SIGKILL, as a crashed server."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its port and its data but answers nothing, as behind
        a network partition that drops packets (connections still open: the kernel
        accepts them)."""
        assert self.proc is not None, "never started"
        assert self.proc.poll() is None, "not running"
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None, "never started"
        self.proc.send_signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class SentinelSet:
    """One primary, one replica and three Sentinels (quorum 2) that watch them."""

    def __init__(self, directory: Path, master: str = MASTER_NAME) -> None:
        self.directory = Path(directory)
        self.master = master
        self.primary = RedisServer(self.directory / "primary")
        self.replica = RedisServer(self.directory / "replica", replica_of=self.primary.port)
        self.watchers: list[RedisServer] = []

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(LOOPBACK, s.port) for s in self.watchers]

    def start(self) -> SentinelSet:
        self.primary.start()
        self.replica.start()
        conf = (
            f"bind {LOOPBACK}\n"
            f"sentinel monitor {self.master} {LOOPBACK} {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.master} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.master} 10000\n"
            f"sentinel parallel-syncs {self.master} 1\n"
        )
        for n in range(3):
            self.watchers.append(RedisServer(self.directory / f"sentinel{n}", sentinel_conf=conf))
            self.watchers[-1].start()
        wait_until(self._sentinels_ready, START_TIMEOUT, "the sentinels to see each other")
        return self

    def _sentinels_ready(self) -> bool:
        for s in self.watchers:
            flat = command(s.port, "SENTINEL", "MASTER", self.master)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            if fields["num-other-sentinels"] != "2" or fields["num-slaves"] != "1":
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port as the first Sentinel reports it."""
        _host, port = command(
            self.watchers[0].port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master
        )
        return int(port)

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary; returns it (restart it with ``.start()``)."""
        current = self.primary if self.primary_port() == self.primary.port else self.replica
        current.kill()
        return current

    def wait_for_new_primary(self, old_port: int, timeout: float = 30.0) -> int:
        wait_until(lambda: self.primary_port() != old_port, timeout, "a Sentinel failover")
        return self.primary_port()

    def __enter__(self) -> SentinelSet:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for server in [*self.watchers, self.primary, self.replica]:
            server.kill()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
