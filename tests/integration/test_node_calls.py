"""A real node process serves call media when ``udp_listen`` is set (issue 17; node.server):
its key document is a version 2 one listing the QUIC port it bound, a QUIC connection
pinned with that document's pin is answered by the call relay (a bind to an unknown leg is
refused with ``call.no_leg``), and ``/metrics`` has the ``sealrelay_call_*`` families.
Without ``udp_listen`` the document is version 1 and lists no endpoint."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
import trio

from node.errors import CALL_NO_LEG
from tests.integration.nodeproc import LOOPBACK, NodeProcess
from transport import PinnedKey, connect_quic
from trust.documents import verify_document
from trust.media import media_endpoint, media_pin
from wire import encode
from wire.media_control import MediaBind, MediaRefused, decode_bind_answer
from wire.server import ServerKeyDocument, ServerKeyDocumentBodyV2

DOMAIN: Final = "calls.test"
DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"
STEP_TIMEOUT: Final = 10.0
CALL_FAMILIES: Final = (
    "sealrelay_call_legs 0.0",
    "sealrelay_call_bound_legs 0.0",
    "sealrelay_call_bridges 0.0",
    "sealrelay_call_forwarded_datagrams_total 0.0",
    "sealrelay_call_forwarded_bytes_total 0.0",
    'sealrelay_call_dropped_total{reason="stream_not_bound"} 0.0',
    "sealrelay_call_connections_total 1.0",
    'sealrelay_call_bind_failures_total{reason="refused"} 1.0',
    "sealrelay_call_send_failures_total 0.0",
)


def _node(tmp_path: Path, name: str, udp_listen: str | None) -> NodeProcess:
    config = tmp_path / f"{name}.toml"
    config.write_text(f'udp_listen = "{udp_listen}"\n' if udp_listen is not None else "")
    return NodeProcess(tmp_path / name, domain=DOMAIN, config=config)


@pytest.fixture
def calls_node(tmp_path: Path) -> Iterator[NodeProcess]:
    with _node(tmp_path, "calls", f"{LOOPBACK}:0") as node:
        node.start()
        yield node


@pytest.fixture
def plain_node(tmp_path: Path) -> Iterator[NodeProcess]:
    with _node(tmp_path, "plain", None) as node:
        node.start()
        yield node


def _document(url: str) -> ServerKeyDocument:
    response = httpx.get(url + DOCUMENT_PATH, timeout=STEP_TIMEOUT)
    assert response.status_code == 200
    return verify_document(response.content, DOMAIN, int(time.time() * 1000))


async def _bind_unknown_leg(port: int, pin: bytes) -> MediaRefused:
    """Connect with the document's pin, ask to bind a leg the node never allocated."""
    with trio.fail_after(STEP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            channel = await connect_quic(nursery, LOOPBACK, port, pin=PinnedKey.from_sha256(pin))
            bind = MediaBind(secrets.token_bytes(16), secrets.token_bytes(32))
            await channel.send_control(encode(bind))
            answer = decode_bind_answer(await channel.receive_control())
            channel.close(0, "done")
            nursery.cancel_scope.cancel()
    assert isinstance(answer, MediaRefused)
    return answer


def test_udp_listen_serves_the_call_relay_and_lists_it(calls_node: NodeProcess) -> None:
    assert calls_node.url is not None
    doc = _document(calls_node.url)
    assert isinstance(doc.body, ServerKeyDocumentBodyV2)
    endpoint = media_endpoint(doc)
    assert endpoint is not None
    assert endpoint.port > 0
    refused = trio.run(_bind_unknown_leg, endpoint.port, media_pin(doc))
    assert refused.code == CALL_NO_LEG
    metrics = httpx.get(calls_node.url + "/metrics", timeout=STEP_TIMEOUT).text
    for line in CALL_FAMILIES:
        assert line in metrics.splitlines(), line
    assert "calls listening" in calls_node.log_text()


def test_without_udp_listen_the_document_lists_no_media(plain_node: NodeProcess) -> None:
    assert plain_node.url is not None
    doc = _document(plain_node.url)
    assert not isinstance(doc.body, ServerKeyDocumentBodyV2)
    assert media_endpoint(doc) is None
    metrics = httpx.get(plain_node.url + "/metrics", timeout=STEP_TIMEOUT).text
    assert "sealrelay_call_" not in metrics
