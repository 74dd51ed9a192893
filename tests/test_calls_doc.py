"""``docs/calls.md`` stays true where that is cheap to check (issue 17, "Operations").

The doc quotes constants, labels, codes and metric names; each is read here from the code
that defines it, so a change to one of them fails until the doc follows:

- every file the doc names in backticks exists;
- the timeouts and bounds of "Limits and timeouts", the KDF labels and rekey numbers of
  "The key schedule", and the header layout of "The media datagram";
- the close codes, the ``call.*`` error codes and the ``sealrelay_call_*`` series are
  exactly the code's;
- "Numbers" says the numbers are pending, until someone puts measured ones there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from client.calls import keys
from client.calls.signal_events import RING_TIMEOUT_MS, SETUP_TIMEOUT_MS, EndReason
from node.calls import ALLOCATION_TIMEOUT_MS, IDLE_TIMEOUT_MS, DropReason
from node.calls.shell import BIND_TIMEOUT
from node.calls_requests import WEBSOCKET_DROPPED
from node.metrics import CallNumbers, Metrics
from suites import labels
from trust import errors
from trust.peerlink import PROOF_WINDOW_MS
from wire import media, media_control, media_link
from wire.calls import CALL_ID_LEN, CALL_SECRET_LEN, LEG_ID_LEN, MAX_RING_MS

ROOT: Final = Path(__file__).resolve().parents[1]
DOC: Final = ROOT / "docs" / "calls.md"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(heading: str) -> str:
    text = _doc()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _seconds(ms: int) -> str:
    return f"{ms // 1000} s"


def test_every_file_named_exists() -> None:
    paths = re.findall(r"`([a-z_]+/[a-z_0-9/]+\.(?:py|md|toml))`", _doc())
    assert len(paths) > 20
    for path in paths:
        assert (ROOT / path).is_file(), path


def test_limits_and_timeouts() -> None:
    limits = _section("Limits and timeouts")
    assert f"| {_seconds(RING_TIMEOUT_MS)} |" in limits
    assert f"| {_seconds(MAX_RING_MS)} |" in limits
    assert f"| {_seconds(SETUP_TIMEOUT_MS)} |" in limits
    assert f"| {_seconds(ALLOCATION_TIMEOUT_MS)} |" in limits
    assert f"| {_seconds(IDLE_TIMEOUT_MS)} idle |" in limits
    assert f"| {BIND_TIMEOUT:g} s |" in limits
    assert f"| {PROOF_WINDOW_MS // 1000} s |" in limits
    assert f"| {media.MAX_DATAGRAM:,} bytes |" in limits
    assert f"| {keys.REKEY_INTERVAL:g} s / {keys.EPOCH_GRACE:g} s |" in limits


def test_key_schedule() -> None:
    schedule = " ".join(_section("The key schedule").split())  # prose wraps anywhere
    for label in (
        labels.CALL_DIRECTION_INFO,
        labels.CALL_NEXT_EPOCH_INFO,
        labels.CALL_SFRAME_BASE_INFO,
    ):
        assert f'"{label.decode()}"' in schedule
    assert f"every {keys.REKEY_INTERVAL:g} s" in schedule
    assert f"{keys.MAX_EPOCH_SKIP} epochs ahead" in schedule
    assert f"for {keys.EPOCH_GRACE:g} s" in schedule
    assert f"{keys.REPLAY_WINDOW:,} counters" in schedule
    assert f"`{keys.SUITE.name}` (suite id {keys.SUITE.suite_id})" in schedule
    assert f"{keys.BASE_KEY_LEN} bytes" in schedule
    assert "`KID = epoch * 2 + direction`" in schedule
    for epoch in range(3):
        for direction in keys.Direction:
            assert keys.kid(epoch, direction) == epoch * 2 + direction


def test_signal_sizes() -> None:
    signalling = _section("Signalling")
    assert f"call id ({CALL_ID_LEN} random bytes)" in signalling
    assert f"call secret ({CALL_SECRET_LEN} random bytes)" in signalling
    assert f"random {LEG_ID_LEN}-byte id" in _section("The rendezvous: legs")
    results = {code for code in re.findall(r"\| `(call\.[a-z_]+)` \|", signalling)}
    assert results == {reason.value for reason in EndReason}


def test_datagram_header() -> None:
    datagram = _section("The media datagram")
    assert f"clear {media.HEADER_SIZE}-byte header" in datagram
    assert f"1 to {media.MAX_PAYLOAD:,} bytes" in datagram
    first = media.VERSION << 4 | media.TYPE_MEDIA
    assert f"`0x{first:02x}`" in datagram
    assert f"`0x{first:02x}`" in _section("The WebSocket fallback")


def test_close_codes_are_the_codes() -> None:
    documented = {int(c, 16) for c in re.findall(r"^\| `(0x[0-9a-f]+)` \|", _doc(), re.M)}
    named = {
        getattr(module, name)
        for module in (media_control, media_link)
        for name in dir(module)
        if name.startswith("CLOSE_")
    }
    assert named <= documented
    assert documented - named == {0x0, 0x101, 0x102}  # transport.quic's own


def test_error_codes_are_the_codes() -> None:
    documented = set(re.findall(r"`(call\.[a-z_]+)`", _section("Error codes")))
    shared = {code for code in errors.CODES if code.startswith("call.")}
    assert shared <= documented
    for code in (errors.MEDIA_NONE, errors.MEDIA_PORT, errors.MEDIA_PIN, errors.FED_AUTH):
        assert f"`{code}`" in _section("Error codes")


def test_metrics_are_the_series() -> None:
    metrics = Metrics()
    drops = {str(reason): 1 for reason in DropReason}
    failures = {"refused": 1, "malformed_control": 1, "timeout": 1}
    links = {
        "links": 1,
        "link_connects": {"outbound": 1},
        "link_failures": {"inbound_x": 1},
        "relayed_binds": {"relayed": 1},
    }
    metrics.calls = lambda: CallNumbers(1, 1, 1, 1, 1, 1, drops, 1, failures, 1, **links)
    metrics.count(WEBSOCKET_DROPPED, 1, reason="unavailable")  # present once one was dropped
    rendered = metrics.render({})
    samples = re.findall(r"^(sealrelay_call_\w+)[{ ]", rendered, re.M)
    histogram = re.compile(r"_(bucket|count|sum)$")
    families = {histogram.sub("", n) if histogram.search(n) else n for n in samples}
    exported = {name for name in families if not name.endswith("_created")}
    section = _section("Metrics")
    documented = set(re.findall(r"`(sealrelay_call_\w+)(?:\{[a-z]+\})?`", section))
    assert documented == exported
    for reason in [*drops, *failures]:
        assert f"`{reason}`" in section


def test_numbers_are_pending_until_measured() -> None:
    numbers = _section("Numbers")
    assert "make bench calls" in numbers
    rows = [line for line in numbers.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [cell.strip() for row in rows[1:] for cell in row.strip("|").split("|")[2:]]
    measured = [c for c in cells if c != "pending"]
    if measured:  # once filled in, the doc must stop calling them pending
        assert "**Pending.**" not in numbers
    else:
        assert "**Pending.**" in numbers
