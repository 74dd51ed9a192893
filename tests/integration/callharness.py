"""Two domains' real node processes with call media on loopback UDP, and what the call
tests (issue 17, ``test_calls_federated``) do with them.

    world = CallWorld.start(tmp / "calls")    # alpha (caller's) and bravo (callee's) nodes
    alice = world.user(A, "alice")           # registered through `sealrelay client register`
    callee = bob.start("answer", "--wait", "60", "--seconds", "8")    # a CLI process
    outcome = finish(callee)                 # exit status, JSON lines, stderr (bounded)
    with alice.client() as client: ...       # the same account in this process (Python API)
    legs = RecordingLegs(client, plan)       # the Legs a call uses: grants, injections
    scan_memory(pid, {"name": needle})       # which needles a process's memory holds
    world.close()

Every subprocess runs with a timeout; only the processes started here are ever signalled.
A CLI process can run on a shaped network (``tests.integration.netshim``): its own
loopback source address, or UDP blocked.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from client.app import Client
from client.calls.keys import (
    SUITE,
    CallSecret,
    Direction,
    MediaCrypto,
    chain_start,
    epoch_base_key,
    kid,
)
from client.calls.signal_events import CallConfig
from client.cli import ATTACHMENTS_DIR, STORE_FILE
from client.store.sqlite import SqliteStore
from suites.sframe import decode_header, derive_key_salt
from suites.sframe import decrypt as sframe_decrypt
from tests.integration.fedharness import LocalFederation, data_files
from tests.integration.netshim import BLOCK_UDP_ENV, SOURCE_IP_ENV
from tests.integration.nodeproc import LOOPBACK, invite, json_lines, run_cli, sealrelay_command
from transport.base import DATAGRAM_BATCH, MediaTransport, TransportKind, TransportStats
from wire.calls import LegRef
from wire.media import MediaKind, decode_datagram, replace_sender
from wire.relay_calls import LegEnded, LegGrant

A: Final = "alpha-calls.test"
"""The caller's domain."""
B: Final = "bravo-calls.test"
"""The callee's domain."""
EXTRA: Final = f'udp_listen = "{LOOPBACK}:0"'
STEP_TIMEOUT: Final = 150.0
"""Seconds any one CLI call or answer may take before the test kills it."""
RING_ENV: Final = "SEALRELAY_RING_TIMEOUT"
SUMMARY_KEYS: Final = frozenset(
    {
        "frames_sent",
        "frames_received",
        "frames_lost",
        "frames_late",
        "decrypt_failures",
        "latency_ms_p50",
        "latency_ms_p99",
        "jitter_ms",
        "transport",
        "seconds",
    }
)
_CHUNK: Final = 1 << 24
_SKIPPED_REGIONS: Final = ("[vvar]", "[vsyscall]", "[vvar_vclock]")


# --- the federation and its users -----------------------------------------------------------------


@dataclass
class CallUser:
    """An account used through ``sealrelay client`` and, in this process, as a Client."""

    name: str
    domain: str
    home: Path
    passphrase: str

    @property
    def address(self) -> str:
        return f"{self.name}@{self.domain}"

    @property
    def env(self) -> dict[str, str]:
        return {"SEALRELAY_PASSPHRASE": self.passphrase, "SEALRELAY_TIMEOUT": "60"}

    def start(
        self,
        *args: str,
        ring: float | None = None,
        source_ip: str | None = None,
        block_udp: bool = False,
    ) -> subprocess.Popen[str]:
        """``sealrelay client ARGS[0] --home HOME ARGS[1:]`` in the background; with
        ``source_ip`` or ``block_udp`` on a shaped network (``netshim``)."""
        env = {**os.environ, **self.env}
        if ring is not None:
            env[RING_ENV] = f"{ring:g}"
        command = sealrelay_command()
        if source_ip is not None or block_udp:
            command = [sys.executable, "-m", "tests.integration.netshim"]
            env[SOURCE_IP_ENV] = source_ip or ""
            env[BLOCK_UDP_ENV] = "1" if block_udp else ""
        argv = [*command, "client", args[0], "--home", str(self.home), *args[1:]]
        return subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``sealrelay client ARGS[0] --home HOME ARGS[1:]``, checked."""
        return run_cli("client", args[0], "--home", str(self.home), *args[1:], env=self.env)

    @contextlib.contextmanager
    def client(self, *, ring: float | None = None) -> Iterator[Client]:
        """The account's saved state as a :class:`Client` of this process (the store is
        closed on exit); ``ring``: its ring timeout in seconds."""
        store = SqliteStore.open(self.home / STORE_FILE, self.passphrase)
        try:
            config = (
                CallConfig() if ring is None else CallConfig(ring_timeout_ms=round(ring * 1000))
            )
            yield Client.load(store, save_dir=self.home / ATTACHMENTS_DIR, call_config=config)
        finally:
            store.close()


class CallWorld:
    """Two domains' nodes with ``udp_listen`` (``LocalFederation``), for a test module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fed = LocalFederation(root / "fed", [A, B], extra=EXTRA)

    @classmethod
    def started(cls, root: Path) -> CallWorld:
        world = cls(root)
        try:
            world.fed.start()
        except BaseException:
            world.close()
            raise
        return world

    def close(self) -> None:
        self.fed.close()

    def user(self, domain: str, name: str) -> CallUser:
        """A new account ``name@domain`` with a CLI home."""
        user = CallUser(
            name, domain, self.root / name, f"calls {name} {secrets.token_hex(4)} words"
        )
        node = self.fed.nodes[domain]
        code = invite(node.data_dir, name)
        run_cli(
            *("client", "register", user.address, "--node", self.fed.url(domain)),
            *("--code", code, "--home", str(user.home)),
            env=user.env,
        )
        return user

    def pair(self, tag: str) -> tuple[CallUser, CallUser]:
        """A new caller at A and callee at B, registered at once (two processes)."""
        with ThreadPoolExecutor(2) as pool:
            caller = pool.submit(self.user, A, f"{tag}-caller")
            callee = pool.submit(self.user, B, f"{tag}-callee")
            return caller.result(), callee.result()

    def pid(self, domain: str) -> int:
        proc = self.fed.nodes[domain].proc
        assert proc is not None
        return proc.pid

    def node_paths(self, domain: str) -> list[Path]:
        """The node's data files (its SQLite database, WAL, keys) and its log."""
        node = self.fed.nodes[domain]
        return [*data_files(node.data_dir), node.log_path]


# --- CLI outcomes ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """A finished CLI process: exit status, its JSON lines, stderr."""

    status: int
    lines: list[dict[str, Any]]
    stderr: str

    def events(self) -> list[str]:
        return [line["event"] for line in self.lines if "event" in line]

    @property
    def summary(self) -> dict[str, Any]:
        last = self.lines[-1] if self.lines else {}
        assert "event" not in last, f"no summary: {self.lines}\n{self.stderr}"
        return last

    @property
    def reason(self) -> str | None:
        ended = [line for line in self.lines if line.get("event") == "ended"]
        return str(ended[-1]["reason"]) if ended else None


def finish(proc: subprocess.Popen[str], timeout: float = STEP_TIMEOUT) -> Outcome:
    """Wait for ``proc`` (killed after ``timeout``: an AssertionError)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout} s:\n{out}\n{err}") from None
    return Outcome(proc.returncode, json_lines(out), err)


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` (one this test started) if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=10)


# --- a recording, injecting Legs for an in-process caller -----------------------------------------


@dataclass
class Injection:
    """What an :class:`InjectingTransport` slips into the media once ``after`` datagrams
    went out: the next single-packet audio datagram tampered (its last byte flipped), an
    audio datagram sent ``replay_back`` datagrams earlier sent again, and a copy of one
    under ``foreign_sender`` (another connection's sender id)."""

    after: int = 200
    tamper: bool = False
    replay: bool = False
    foreign_sender: int | None = None
    replay_back: int = 40
    done: dict[str, int] = field(default_factory=dict)


class InjectingTransport:
    """A :class:`MediaTransport` passing everything through to ``inner``, but for the
    datagrams its :class:`Injection` slips in."""

    def __init__(self, inner: MediaTransport, injection: Injection | None) -> None:
        self.inner = inner
        self.injection = injection
        self.sent = 0
        self._history: list[bytes] = []

    @property
    def kind(self) -> TransportKind:
        return self.inner.kind

    async def send_datagram(self, payload: bytes) -> None:
        await self.send_datagrams([payload])

    async def send_datagrams(self, payloads: Iterable[bytes]) -> None:
        out = [self._shape(p) for p in payloads]
        await self.inner.send_datagrams([d for batch in out for d in batch])

    def _shape(self, datagram: bytes) -> list[bytes]:
        self.sent += 1
        injection = self.injection
        audio = _single_audio(datagram)
        if audio:
            self._history = [*self._history[-200:], datagram]
        if injection is None or self.sent < injection.after or not audio:
            return [datagram]
        done = injection.done
        out = [datagram]
        if injection.tamper and "tamper" not in done:
            done["tamper"] = self.sent
            out = [datagram[:-1] + bytes([datagram[-1] ^ 0x01])]
        elif (
            injection.replay and "replay" not in done and len(self._history) > injection.replay_back
        ):
            done["replay"] = self.sent
            out.append(self._history[-1 - injection.replay_back])
        elif injection.foreign_sender is not None and "foreign" not in done:
            done["foreign"] = self.sent
            out.append(replace_sender(datagram, injection.foreign_sender.to_bytes(4, "big")))
        return out

    async def receive_datagram(self) -> bytes:
        return await self.inner.receive_datagram()

    async def receive_datagram_batch(self, limit: int = DATAGRAM_BATCH) -> list[bytes]:
        return await self.inner.receive_datagram_batch(limit)

    def datagrams(self) -> Any:
        return self.inner.datagrams()

    async def send_control(self, message: bytes) -> None:
        await self.inner.send_control(message)

    async def receive_control(self) -> bytes:
        return await self.inner.receive_control()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def stats(self) -> TransportStats:
        return self.inner.stats()


def _single_audio(datagram: bytes) -> bool:
    """Whether ``datagram`` is a whole audio frame in one packet."""
    try:
        header, payload = decode_datagram(datagram)
    except Exception:
        return False
    return header.stream.kind is MediaKind.AUDIO and header.packets == 1 and len(payload) > 0


class RecordingLegs:
    """The ``client.calls.control.Legs`` of ``client``, recording every grant and bridge
    and wrapping each media transport in an :class:`InjectingTransport`."""

    def __init__(self, client: Client, injection: Injection | None = None) -> None:
        self.client = client
        self.injection = injection
        self.grants: list[LegGrant] = []
        self.bridged: list[LegRef] = []
        self.transports: list[InjectingTransport] = []
        self.senders: list[int] = []

    @property
    def domain(self) -> str:
        return self.client.domain

    async def leg_allocate(self) -> LegGrant:
        grant = await self.client.leg_allocate()
        self.grants.append(grant)
        return grant

    async def leg_bridge(self, ref: LegRef) -> LegGrant:
        self.bridged.append(ref)
        grant = await self.client.leg_bridge(ref)
        self.grants.append(grant)
        return grant

    async def leg_hang_up(self, leg_id: bytes) -> None:
        await self.client.leg_hang_up(leg_id)

    async def leg_ended(self, leg_id: bytes) -> LegEnded:
        return await self.client.leg_ended(leg_id)

    async def media_quic(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        inner, sender = await self.client.media_quic(grant)
        return self._wrap(inner, sender)

    async def media_websocket(self, grant: LegGrant) -> tuple[MediaTransport, int]:
        inner, sender = await self.client.media_websocket(grant)
        return self._wrap(inner, sender)

    def _wrap(self, inner: MediaTransport, sender: int) -> tuple[MediaTransport, int]:
        transport = InjectingTransport(inner, self.injection)
        self.transports.append(transport)
        self.senders.append(sender)
        return transport, sender


# --- secrets and scans ----------------------------------------------------------------------------


def media_keys(secret: CallSecret, epochs: Sequence[int] = (0, 1)) -> dict[str, bytes]:
    """The call secret and every key derived from it in ``epochs``, both directions:
    chain secrets, SFrame base keys, and the AES keys and salts SFrame derives."""
    found = {"call secret": secret.secret}
    for direction in Direction:
        found[f"chain_0 {direction.name}"] = chain_start(secret, direction)
        for epoch in epochs:
            base = epoch_base_key(secret, direction, epoch)
            key, salt = derive_key_salt(SUITE, kid(epoch, direction), base)
            found[f"base key {epoch} {direction.name}"] = base
            found[f"sframe key {epoch} {direction.name}"] = key
            found[f"sframe salt {epoch} {direction.name}"] = salt
    return found


def check_media_keys(secret: CallSecret, keys: Mapping[str, bytes]) -> None:
    """The epoch-0 SFrame keys and salts of :func:`media_keys` are those the client's own
    :class:`MediaCrypto` encrypts with (so a scan for them cannot miss by a wrong
    derivation)."""
    for direction in Direction:
        crypto = MediaCrypto(secret, direction, now=0.0)
        frame = crypto.protect(b"metadata", b"a frame", now=0.0)
        key = keys[f"sframe key 0 {direction.name}"]
        salt = keys[f"sframe salt 0 {direction.name}"]
        opened = sframe_decrypt(SUITE, key, salt, decode_header(frame), frame, b"metadata")
        assert opened == b"a frame"


def _regions(pid: int) -> Iterator[tuple[int, int]]:
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("r"):
                continue
            if len(fields) > 5 and fields[5] in _SKIPPED_REGIONS:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            yield start, end


def scan_memory(pid: int, needles: Mapping[str, bytes]) -> tuple[set[str], int]:
    """The names of the ``needles`` found in the readable memory of process ``pid`` (one
    this test started), and the bytes read; regions that cannot be read are skipped."""
    found: set[str] = set()
    overlap = max(len(n) for n in needles.values()) - 1
    scanned = 0
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end in _regions(pid):
            tail = b""
            at = start
            while at < end:
                try:
                    mem.seek(at)
                    chunk = mem.read(min(_CHUNK, end - at))
                except (OSError, ValueError, OverflowError):
                    break
                if not chunk:
                    break
                scanned += len(chunk)
                window = tail + chunk
                found.update(name for name, n in needles.items() if n in window)
                tail = window[-overlap:] if overlap else b""
                at += len(chunk)
    return found, scanned


def holders(paths: Sequence[Path], needles: Mapping[str, bytes]) -> dict[str, list[str]]:
    """For each needle, the files among ``paths`` whose raw bytes hold it."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    for path in paths:
        data = path.read_bytes()
        for name, needle in needles.items():
            if needle in data:
                found[name].append(path.name)
    return found


def leaks_in_text(text: str, needles: Mapping[str, bytes]) -> list[str]:
    """The names of ``needles`` that occur in ``text``."""
    return [name for name, n in needles.items() if n.decode("latin-1") in text]


def address_forms(address: str) -> dict[str, bytes]:
    """An address as a node could keep it: as is, lower case, its local part in context."""
    local = address.split("@", 1)[0]
    return {
        "address": address.encode(),
        "address lower": address.lower().encode(),
        "local part quoted": f'"{local}"'.encode(),
    }


def ip_forms(ip: str) -> dict[str, bytes]:
    """An IPv4 address as text, packed, and IPv4-mapped IPv6 text."""
    packed = bytes(int(x) for x in ip.split("."))
    return {"ip": ip.encode(), "ip packed": packed, "ip mapped": f"::ffff:{ip}".encode()}


def check_summary(outcome: Outcome, transport: str) -> dict[str, Any]:
    """A call that ended with a hang-up and a summary with every key, over ``transport``,
    whose received frames all authenticated and matched their digests."""
    assert outcome.status == 0, outcome.stderr[-4000:]
    assert "Traceback" not in outcome.stderr
    assert outcome.reason == "call.hangup", outcome.lines
    summary = outcome.summary
    assert set(summary) >= SUMMARY_KEYS, sorted(summary)
    assert summary["transport"] == transport, summary
    assert summary["frames_received"] > 0, summary
    assert summary["decrypt_failures"] == 0, summary
    assert summary.get("digest_mismatches") == 0, summary
    return summary


def distinct_loopback() -> str:
    """A random loopback address other than 127.0.0.1, unlikely to occur by chance."""
    a, b, c = secrets.randbelow(200) + 20, secrets.randbelow(250) + 2, secrets.randbelow(250) + 2
    return f"127.{a}.{b}.{c}"
