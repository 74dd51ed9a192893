"""A remote party cannot make the node log errors at will by hanging up on early refusals.

An upload the node refuses before reading its body (a blob PUT with a made-up token, a
federation PUT declaring a body over the bound) is answered at once; a client that closes
(with a reset) right after the status line used to make hypercorn's half-close and the
answer's last write meet on the socket: ``trio.BusyResourceError`` and then an attempt to
start a 500 on a started response, two error-level tracebacks per request. Here the same
hang-ups come from several threads; the node must log no error, and keep serving.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
import trio

from tests.integration.nodeproc import NodeProcess

THREADS: Final = 4
PER_THREAD: Final = 60
DECLARED: Final = 50_000_000


def _requests(host: str) -> list[bytes]:
    head = f"Host: {host}\r\nContent-Length: {DECLARED}\r\n"
    blob = "PUT /v1/blobs/" + "00" * 16 + " HTTP/1.1\r\n" + head
    blob += "Authorization: Bearer " + "11" * 32 + "\r\n\r\n"
    fed = "PUT /federation/v1/send/" + "00" * 16 + " HTTP/1.1\r\n" + head + "\r\n"
    return [blob.encode(), fed.encode()]


def _hang_up(address: tuple[str, int], request: bytes) -> None:
    """Send ``request`` and some body, read the start of the answer, close with a reset."""
    with socket.create_connection(address, timeout=10) as conn:
        try:
            conn.sendall(request)
            conn.sendall(b"x" * 200_000)
        except OSError:
            pass  # the node may close first: that is allowed
        with contextlib.suppress(OSError):
            conn.recv(12)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _hammer(address: tuple[str, int], requests: list[bytes]) -> None:
    for n in range(PER_THREAD):
        _hang_up(address, requests[n % len(requests)])


def _error_lines(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("level") == "error":
            found.append(line[:300])
    return found


async def test_hanging_up_on_early_refusals_logs_no_error(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "node") as node:
        url = node.start()
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        address = (parts.hostname, parts.port)
        requests = _requests(parts.netloc)

        def run_all() -> None:
            threads = [
                threading.Thread(target=_hammer, args=(address, requests)) for _ in range(THREADS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        await trio.to_thread.run_sync(run_all)
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(f"{url}/metrics")
        assert answer.status_code == 200
        assert node.running()
        node.stop()
        assert _error_lines(node.log_text()) == []
