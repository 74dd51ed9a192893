"""The callee's wait for the caller's first datagram (client/calls/primed.py): what was
read comes first, then the transport's own; no datagram in time or a closed transport
give the transport back as it is."""

from __future__ import annotations

import trio

from client.calls.primed import Primed, after_first_datagram
from tests.client.calls.callkit import MemoryMedia


async def test_the_first_datagrams_are_put_back_in_front() -> None:
    ours, theirs = MemoryMedia.pair("quic")
    await theirs.send_datagrams([b"one", b"two"])
    primed = await after_first_datagram(ours, wait=1.0)
    assert isinstance(primed, Primed)
    assert primed.kind == "quic"
    await theirs.send_datagram(b"three")
    assert await primed.receive_datagram_batch(1) == [b"one"]
    assert await primed.receive_datagram() == b"two"
    assert await primed.receive_datagram_batch() == [b"three"]
    await primed.send_datagram(b"back")
    assert await theirs.receive_datagram() == b"back"
    await theirs.aclose()
    assert [d async for d in primed.datagrams()] == []


async def test_no_datagram_in_time_or_a_closed_transport_gives_it_back() -> None:
    ours, theirs = MemoryMedia.pair("websocket")
    start = trio.current_time()
    assert await after_first_datagram(ours, wait=0.1) is ours
    assert trio.current_time() - start >= 0.1
    await theirs.aclose()
    assert await after_first_datagram(ours, wait=1.0) is ours
