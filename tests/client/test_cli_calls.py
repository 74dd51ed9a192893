"""``sealrelay client call|answer`` (client/cli_calls.py) without a node: the parsed
shapes and defaults, the ring timeout knob, and the usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from client import cli_calls
from client.calls.signal_events import RING_TIMEOUT_MS
from client.cli import UsageError
from sealrelay.cli import build_parser, main


def test_call_and_answer_parse_with_their_defaults() -> None:
    parser = build_parser()
    call = parser.parse_args(["client", "call", "bob@example.test", "--home", "h"])
    assert (call.to, call.video, call.seconds, call.transport) == (
        "bob@example.test",
        False,
        cli_calls.DEFAULT_SECONDS,
        "quic",
    )
    assert call.handler == "client.cli_calls:call"
    answer = parser.parse_args(["client", "answer", "--home", "h", "--wait", "5"])
    assert (answer.wait, answer.seconds) == (5.0, cli_calls.DEFAULT_SECONDS)
    assert answer.handler == "client.cli_calls:answer"
    video = parser.parse_args(
        ["client", "call", "b@e.test", "--video", "--seconds", "3", "--transport", "websocket"]
    )
    assert (video.video, video.seconds, video.transport) == (True, 3.0, "websocket")
    with pytest.raises(SystemExit):
        parser.parse_args(["client", "call", "b@e.test", "--transport", "udp"])


def test_the_ring_timeout_is_the_protocols_unless_the_test_knob_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(cli_calls.RING_TIMEOUT_ENV, raising=False)
    assert cli_calls._call_config().ring_timeout_ms == RING_TIMEOUT_MS == 45_000
    monkeypatch.setenv(cli_calls.RING_TIMEOUT_ENV, "2.5")
    assert cli_calls._call_config().ring_timeout_ms == 2_500
    for bad in ("soon", "0", "-1", "1e9"):
        monkeypatch.setenv(cli_calls.RING_TIMEOUT_ENV, bad)
        with pytest.raises(UsageError):
            cli_calls._call_config()


@pytest.mark.parametrize(
    "argv",
    [
        ["client", "call", "bob@example.test", "--seconds", "0"],
        ["client", "answer", "--seconds", "-1"],
        ["client", "answer", "--wait", "-1"],
    ],
)
def test_bad_numbers_are_one_line_usage_errors(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--home", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("sealrelay: usage: ")
    assert len(captured.err.splitlines()) == 1
