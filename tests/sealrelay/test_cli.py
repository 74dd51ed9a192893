"""The ``sealrelay`` command line: every command and argument has help, the command shapes
that outside checks call are all still there, ``--version``, and ``$SEALRELAY_HOME``."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Iterator

import pytest

from sealrelay.cli import build_parser, main

Shape = tuple[str, str]
"""(command path, an option string or a positional's metavar)."""


def walk(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.Action]]:
    """Every ``(command path, argument)`` in the tree under ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"'{path} {name}' has no help"
                yield from walk(sub, f"{path} {name}".strip())
        else:
            yield path, action


def shape(path: str, action: argparse.Action) -> Shape:
    return path, action.option_strings[0] if action.option_strings else str(
        action.metavar or action.dest
    )


def test_every_argument_of_every_command_has_help() -> None:
    missing = [
        shape(path, action)
        for path, action in walk(build_parser())
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert missing == []


# The command shapes as of issue 15 (calls: issue 17); outside checks call them. Add, never
# rename.
KNOWN_SHAPES: frozenset[Shape] = frozenset(
    {
        ("node serve", "--domain"), ("node serve", "--listen"), ("node serve", "--data"),
        ("node serve", "--config"),
        ("admin invite", "name"), ("admin invite", "--data"), ("admin invite", "--ttl"),
        ("keys init", "--domain"), ("keys init", "--suite"), ("keys init", "--data"),
        ("keys init", "--k8s"), ("keys init", "--name"), ("keys init", "--namespace"),
        ("keys root-init", "--out"),
        ("keys certify", "--root"), ("keys certify", "--data"), ("keys certify", "--domain"),
        ("keys certify", "--days"),
        ("keys rotate", "--data"), ("keys rotate", "--overlap"), ("keys rotate", "--root"),
        ("keys rotate", "--domain"),
        ("keys fingerprint", "--data"), ("keys fingerprint", "--root-public"),
        ("client register", "NAME@DOMAIN"), ("client register", "--node"),
        ("client register", "--code"), ("client register", "--home"),
        ("client register", "--suite"), ("client register", "--no-introductions"),
        ("client send", "--home"), ("client send", "TO_ADDRESS"), ("client send", "TEXT"),
        ("client send", "--attach"), ("client send", "--expire"),
        ("client receive", "--home"), ("client receive", "--wait"),
        ("client receive", "--save-dir"),
        ("client verify", "--home"), ("client verify", "ADDRESS"),
        ("client verify", "--accept"),
        ("client info", "--home"),
        ("client history", "--home"),
        ("client group create", "NAME"), ("client group create", "--home"),
        ("client group create", "--member"),
        ("client group add", "GROUP"), ("client group add", "ADDRESS"),
        ("client group add", "--home"),
        ("client group remove", "GROUP"), ("client group remove", "ADDRESS"),
        ("client group remove", "--home"),
        ("client group send", "GROUP"), ("client group send", "TEXT"),
        ("client group send", "--home"), ("client group send", "--attach"),
        ("client group send", "--expire"),
        ("client group list", "--home"),
        ("client call", "TO_ADDRESS"), ("client call", "--home"), ("client call", "--video"),
        ("client call", "--seconds"), ("client call", "--transport"),
        ("client answer", "--home"), ("client answer", "--wait"), ("client answer", "--seconds"),
        ("dev run", "--data"), ("dev run", "--domain"), ("dev run", "--listen"),
        ("dev up", "--domains"), ("dev up", "--data"), ("dev up", "--base-port"),
    }
)  # fmt: skip


def test_the_known_command_shapes_are_all_there() -> None:
    shapes = {shape(path, action) for path, action in walk(build_parser())}
    assert KNOWN_SHAPES - shapes == set()


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    version = importlib.metadata.version("sealrelay")
    assert capsys.readouterr().out.strip() == f"sealrelay {version}"


@pytest.mark.parametrize(
    "argv",
    [
        ["client", "info"],
        ["client", "history"],
        ["client", "receive"],
        ["client", "send", "bob@example.test", "hi"],
        ["client", "verify", "bob@example.test"],
        ["client", "register", "al@example.test", "--node", "http://127.0.0.1:1", "--code", "C"],
        ["client", "group", "list"],
        ["client", "group", "send", "team", "hi"],
        ["client", "call", "bob@example.test"],
        ["client", "answer"],
    ],
)
def test_no_home_and_no_environment_is_a_one_line_usage_error(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEALRELAY_HOME", raising=False)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "sealrelay: usage: give --home DIR or set SEALRELAY_HOME\n"
