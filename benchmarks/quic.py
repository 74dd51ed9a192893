"""QUIC media transport (``transport``): DATAGRAM frames of 1,200 bytes, one connection.

Cases:

- ``sans-io datagram``: qh3 alone, two ``QuicConnection`` objects in memory (no socket, no
  trio): the client queues one 1,200-byte DATAGRAM frame and packs it, the server opens
  it and yields the event; ACKs flow back every other datagram. Per call: the QUIC work
  of both ends for one datagram (``harness.measure``).
- ``loopback datagrams, bursts of N``: the trio shell on real loopback UDP, server and
  client in this one process: a sender task sends ``COUNT`` datagrams, ``N`` per
  ``send_datagrams`` call, as fast as it returns, while a receiver task reads them with
  ``receive_datagram_batch``. ``ops/s`` is datagrams *delivered* per second of wall
  time, ``mean µs`` its inverse; ``cpu_us_per_dgram`` is process CPU (both ends: Python,
  qh3, system calls) per delivered datagram; ``loss_pct`` the share that never arrived
  (qh3 congestion control, full queues, a full socket buffer); ``dgrams_per_wakeup`` how
  many datagrams the server's socket task drained per wake-up.

Measured on the 2-core development machine while other work loaded it (load average 7):
qh3 alone 10.2 µs p50 per datagram for both ends (about 5 µs per end); the trio shell on
loopback 66 µs of CPU per datagram (both ends) one at a time -- trio's scheduler, one
socket wake-up and one receiver wake-up per datagram -- and 14 µs in bursts of 10, no loss
in either. A node that forwards in bursts (``receive_datagram_batch`` then
``send_datagrams``) pays the second figure, not the first. Wall-time rates on a loaded
machine vary by a factor of two between runs; the CPU columns vary by about 10 %.
"""

from __future__ import annotations

import time
from typing import Final

import trio
from qh3 import QuicConnection
from qh3.quic import events

from benchmarks.harness import Result, measure
from transport import QuicChannel, QuicIdentity, QuicServer, QuicSettings, connect_quic
from transport.quic_config import client_configuration, server_configuration

PAYLOAD: Final = bytes(range(200)) * 6
"""One 1,200-byte datagram (``transport.MAX_DATAGRAM_PAYLOAD``)."""

COUNT: Final = 50_000
QUICK_COUNT: Final = 1_000
BURSTS: Final = (1, 10)
"""Datagrams per ``send_datagrams`` call: one at a time, or a video frame's worth."""
DRAIN_S: Final = 1.0
"""How long the receiver keeps waiting after the last send."""

LOOPBACK: Final = "127.0.0.1"
_CLIENT: Final = (LOOPBACK, 40001)
_SERVER: Final = (LOOPBACK, 40002)
_NOW: Final = 1000.0
_PUMP_ROUNDS: Final = 20


def run(quick: bool) -> list[Result]:
    count = QUICK_COUNT if quick else COUNT
    return [_sans_io(quick), *(trio.run(_loopback, count, burst) for burst in BURSTS)]


# --- qh3 alone ------------------------------------------------------------------------------


def _sans_io(quick: bool) -> Result:
    client, server = _handshake()
    sent = [0]

    def one() -> None:
        client.send_datagram_frame(PAYLOAD)
        for data, _ in client.datagrams_to_send(_NOW):
            server.receive_datagram(data, _CLIENT, _NOW)
        while server.next_event() is not None:
            pass
        sent[0] += 1
        if sent[0] % 2 == 0:  # ACKs back, as a receiver sends them (RFC 9000 13.2.2)
            for data, _ in server.datagrams_to_send(_NOW):
                client.receive_datagram(data, _SERVER, _NOW)
            while client.next_event() is not None:
                pass

    return measure("sans-io datagram", one, quick=quick, group="qh3", extra={"bytes": len(PAYLOAD)})


def _handshake() -> tuple[QuicConnection, QuicConnection]:
    settings = QuicSettings()
    client = QuicConnection(configuration=client_configuration(settings))
    server = QuicConnection(
        configuration=server_configuration(QuicIdentity.generate(), settings),
        original_destination_connection_id=client.original_destination_connection_id,
    )
    client.connect(_SERVER, now=_NOW)
    for _ in range(_PUMP_ROUNDS):
        for data, _ in client.datagrams_to_send(_NOW):
            server.receive_datagram(data, _CLIENT, _NOW)
        for data, _ in server.datagrams_to_send(_NOW):
            client.receive_datagram(data, _SERVER, _NOW)
    done = [e for e in iter(client.next_event, None) if isinstance(e, events.HandshakeCompleted)]
    if not done:
        raise RuntimeError("the in-memory QUIC handshake did not complete")
    return client, server


# --- the trio shell on loopback UDP ---------------------------------------------------------


async def _loopback(count: int, burst: int) -> Result:
    identity = QuicIdentity.generate()
    server = QuicServer(identity, settings=QuicSettings(datagram_queue=4096))
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve, LOOPBACK, 0)
        client = await connect_quic(nursery, LOOPBACK, address[1], pin=identity.pin)
        accepted = await server.accept()
        before = server.stats()
        delivered = [0]
        wall, cpu = time.perf_counter(), time.process_time()
        sent, done = count // burst * burst, trio.Event()
        nursery.start_soon(_receive, accepted, delivered, done, sent)
        for _ in range(count // burst):
            await client.send_datagrams([PAYLOAD] * burst)
        with trio.move_on_after(DRAIN_S):
            await done.wait()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = server.stats()
        nursery.cancel_scope.cancel()
    got = max(1, delivered[0])
    wakeups = max(1, after.wakeups - before.wakeups)
    return Result(
        group="trio+qh3",
        name=f"loopback datagrams, bursts of {burst}",
        ops_per_s=got / wall,
        mean_us=wall / got * 1e6,
        p50_us=None,
        p99_us=None,
        calls=got,
        samples=1,
        batch=got,
        extra={
            "bytes": len(PAYLOAD),
            "sent": sent,
            "cpu_us_per_dgram": round(cpu / got * 1e6, 2),
            "loss_pct": round(100 * (sent - delivered[0]) / sent, 3),
            "dgrams_per_wakeup": round((after.udp_received - before.udp_received) / wakeups, 2),
        },
    )


async def _receive(
    channel: QuicChannel, delivered: list[int], done: trio.Event, count: int
) -> None:
    while True:
        delivered[0] += len(await channel.receive_datagram_batch())
        if delivered[0] >= count:
            done.set()
