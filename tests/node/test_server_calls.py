"""run_node in-process with ``udp_listen`` (issue 17; node.server): the call relay runs on
the port the key document lists, a key rotation picked up while running keeps the QUIC key
the service serves (and the document lists) until a restart, and the sweeper also sweeps
the ``CallLegs`` port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Final

import httpx
import pytest
import trio

from node.config import Config
from node.errors import NODE_LISTEN, CommandError
from node.keys import RELOAD_INTERVAL, replace_key_file
from node.server import NodeHandle, run_node
from node.store import LegRecord
from trust.documents import verify_document
from trust.media import media_endpoint

DOMAIN: Final = "calls.test"
DOCUMENT_PATH: Final = "/.well-known/sealrelay/server"
SWEEP_INTERVAL: Final = 0.05
RELOAD_WAIT: Final = RELOAD_INTERVAL * 5
LEG_ID: Final = bytes(range(16))


def _config(tmp_path: Path) -> Config:
    return Config(
        domain=DOMAIN,
        data_dir=str(tmp_path / "data"),
        listen_port=0,
        udp_listen="127.0.0.1:0",
        store="memory",
        suite="xwing",
        sweep_interval=SWEEP_INTERVAL,
        shutdown_timeout=2.0,
    )


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeHandle]:
    async with trio.open_nursery() as nursery:
        run = partial(run_node, _config(tmp_path), handle_signals=False)
        handle: NodeHandle = await nursery.start(run)
        yield handle
        handle.shutdown()


async def _media(handle: NodeHandle) -> tuple[bytes, int, bytes]:
    """The served document's (signing key id, media port, media pin)."""
    async with httpx.AsyncClient(base_url=handle.url) as http:
        data = (await http.get(DOCUMENT_PATH)).content
    doc = verify_document(data, DOMAIN, int(time.time() * 1000))
    endpoint = media_endpoint(doc)
    assert endpoint is not None
    return doc.signatures[0].key_id, endpoint.port, endpoint.pin


async def test_the_document_lists_the_port_and_key_of_the_running_service(
    node: NodeHandle,
) -> None:
    assert node.calls is not None
    _, port, pin = await _media(node)
    assert port == node.relay.media_port
    assert pin == node.calls.pin.sha256 == node.relay.keys.quic_pin


async def test_a_rotation_keeps_the_running_quic_key_until_a_restart(
    node: NodeHandle,
) -> None:
    assert node.calls is not None
    served = node.calls.pin.sha256
    before, port, _ = await _media(node)
    rotated = node.relay.keys.rotated(node.relay.now_ms(), 3600)
    assert rotated.quic_pin != served
    replace_key_file(node.relay.config.data_dir, rotated)
    with trio.fail_after(RELOAD_WAIT):
        while node.relay.keys.sig_key_id == before:  # noqa: ASYNC110 - polled reload, no event
            await trio.sleep(0.05)
    assert node.relay.keys.sig_key_id == rotated.sig_key_id
    after, port_after, pin_after = await _media(node)
    assert after != before
    assert (port_after, pin_after) == (port, served)


async def test_the_sweeper_sweeps_call_legs(node: NodeHandle) -> None:
    legs = node.relay.ports.call_legs
    expired = node.relay.now_ms() - 1
    assert await legs.add_leg(LegRecord(LEG_ID, b"replica", bytes(32), expired))
    await trio.sleep(SWEEP_INTERVAL * 10)
    assert not await legs.delete_leg(LEG_ID)  # gone already


async def test_a_taken_udp_port_is_a_listen_error(tmp_path: Path) -> None:
    """The same refusal as a taken TCP port: a lone ``CommandError`` in trio's groups
    (what ``node.cli.run_trio`` prints as one line)."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as taken:
        await taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = replace(_config(tmp_path), udp_listen=f"127.0.0.1:{port}")
        with pytest.raises(BaseExceptionGroup) as caught:
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(run_node, config, handle_signals=False))
    matched, rest = caught.value.split(CommandError)
    assert matched is not None
    assert rest is None
    refused = _first(matched)
    assert isinstance(refused, CommandError)
    assert refused.code == NODE_LISTEN
    assert f"UDP 127.0.0.1:{port}" in str(refused)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        inner = inner.exceptions[0]
    return inner
