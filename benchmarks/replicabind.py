"""A QUIC bind at a chosen replica of a domain (issue 18, item 4; node.calls.relayed,
docs/kubernetes.md "The leg's replica"): what a UDP load balancer may do when it sends a
client's media to a replica that did not grant its leg. Shared by the replicas' benchmark
(``benchmarks.callreplicas``) and integration tests (``tests.integration.replicakit``)."""

from __future__ import annotations

from typing import Final

import httpx
import trio

from transport import PinnedKey, QuicChannel, connect_quic
from trust.media import media_endpoint
from wire import decode, encode
from wire.media_control import MediaBind, MediaBound, MediaRefused, decode_bind_answer
from wire.server import ServerKeyDocument

DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"
LOOPBACK: Final = "127.0.0.1"
STEP_TIMEOUT: Final = 15.0
HTTP_TIMEOUT: Final = 10.0


async def document(url: str) -> ServerKeyDocument:
    """The key document the replica at ``url`` serves (it lists its own media port)."""
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        response = await http.get(url + DOCUMENT_PATH)
    response.raise_for_status()
    return decode(response.content, ServerKeyDocument)


async def bind_at(
    nursery: trio.Nursery, url: str, leg_id: bytes, secret: bytes
) -> tuple[QuicChannel, MediaBound | MediaRefused]:
    """A QUIC connection to the media port of the replica at ``url`` (whichever granted the
    leg), pinned to the domain's key, and its answer to ``MediaBind{leg_id, secret}``."""
    endpoint = media_endpoint(await document(url))
    assert endpoint is not None
    pin = PinnedKey.from_sha256(endpoint.pin)
    with trio.fail_after(STEP_TIMEOUT):
        channel = await connect_quic(nursery, LOOPBACK, endpoint.port, pin=pin)
        await channel.send_control(encode(MediaBind(leg_id, secret)))
        return channel, decode_bind_answer(await channel.receive_control())
