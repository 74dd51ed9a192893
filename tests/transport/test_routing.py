"""The server's datagram router on arbitrary bytes: it drops and counts, never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from transport import QuicIdentity, QuicServer
from transport.quic_server import MIN_INITIAL_SIZE

IDENTITY = QuicIdentity.generate()
ADDRESS = ("127.0.0.1", 40000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MIN_INITIAL_SIZE - 1))
def test_arbitrary_small_datagrams_are_dropped_and_counted(data: bytes) -> None:
    server = QuicServer(IDENTITY)
    assert server.route(data, ADDRESS) is None  # too small to start a connection
    stats = server.stats()
    assert stats.malformed + stats.unknown_connection == 1
    assert stats.connections_open == 0
