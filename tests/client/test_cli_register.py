"""The pieces of ``sealrelay client register``: the rules of a new passphrase, asking for it
twice, and the staged store that lands in place only on success."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client import cli_register
from client.cli import UsageError
from client.errors import PassphraseMismatch, StoreError, WeakPassphrase
from client.passphrase import MIN_LENGTH, check, weakness
from client.store.base import NS_META
from client.store.sqlite import SqliteStore

ADDRESS = "alice@example.test"


@pytest.mark.parametrize(
    "secret",
    [
        "correct horse battery staple",  # the README's example
        "Tr0ub4dor&3xyz",
        "alice-at-home-2026",
        "ünïcödé pässphrase",
        "aaaaaaaaaaab",
    ],
)
def test_acceptable_passphrases(secret: str) -> None:
    assert weakness(secret, ADDRESS) is None
    check(secret, ADDRESS)


@pytest.mark.parametrize(
    ("secret", "rule"),
    [
        ("", "at least 12"),
        ("x1" * (MIN_LENGTH // 2 - 1) + "y", "at least 12"),
        ("elevenchars", "at least 12"),
        ("e\u0301" * 6, "at least 12"),  # 12 code points, 6 once NFC-composed
        ("zzzzzzzzzzzzzzzz", "repeated"),
        ("passwordpassword", "repeated"),
        ("abcdefghijklmn", "consecutive"),
        ("zyxwvutsrqponm", "consecutive"),
        ("314159265358979", "only digits"),
        ("Alice@Example.Test", "address or name"),
        ("aliceALICEalice", "repeated"),
    ],
)
def test_weak_passphrases_name_the_rule(secret: str, rule: str) -> None:
    reason = weakness(secret, ADDRESS)
    assert reason is not None
    assert rule in reason
    with pytest.raises(WeakPassphrase, match=rule):
        check(secret, ADDRESS)


def test_the_account_name_alone_is_refused() -> None:
    address = "maximilianus@example.test"
    assert weakness("MAXIMILIANUS", address) == "it must not be the account's address or name"


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the user types at each getpass prompt, in order (and no environment value)."""
    typed: list[str] = []
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        if not typed:
            raise EOFError
        return typed.pop(0)

    monkeypatch.delenv(cli_register.PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(cli_register.getpass, "getpass", fake_getpass)
    yield typed
    assert not typed  # every answer was asked for


def test_a_prompted_passphrase_is_asked_twice(answers: list[str]) -> None:
    answers += ["correct horse battery staple", "correct horse battery staple"]
    assert cli_register.new_passphrase(ADDRESS) == "correct horse battery staple"


def test_two_different_answers_are_refused(answers: list[str]) -> None:
    answers += ["correct horse battery staple", "correct horse battery stapler"]
    with pytest.raises(PassphraseMismatch, match="differ"):
        cli_register.new_passphrase(ADDRESS)


def test_a_weak_prompted_passphrase_is_refused(answers: list[str]) -> None:
    answers += ["short", "short"]
    with pytest.raises(WeakPassphrase, match="at least 12"):
        cli_register.new_passphrase(ADDRESS)


def test_no_terminal_is_a_usage_error(answers: list[str]) -> None:
    with pytest.raises(UsageError, match="SEALRELAY_PASSPHRASE"):
        cli_register.new_passphrase(ADDRESS)


def test_the_environment_passphrase_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli_register.PASSPHRASE_ENV, "alice")
    with pytest.raises(WeakPassphrase):
        cli_register.new_passphrase(ADDRESS)
    monkeypatch.setenv(cli_register.PASSPHRASE_ENV, "correct horse battery staple")
    assert cli_register.new_passphrase(ADDRESS) == "correct horse battery staple"


SECRET = "correct horse battery staple"  # noqa: S105 (a test passphrase)


def test_a_staged_store_lands_in_place_on_success(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    with cli_register.staged_store(home, SECRET) as store:
        store.put(NS_META, b"k", b"v")
        assert not (home / "state.db").exists()
    assert [p.name for p in home.iterdir()] == ["state.db"]
    assert (home / "state.db").stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700
    reopened = SqliteStore.open(home / "state.db", SECRET)
    try:
        assert reopened.get(NS_META, b"k") == b"v"
    finally:
        reopened.close()


class Boom(Exception):
    pass


def stage(home: Path, inside: Callable[[SqliteStore], object]) -> None:
    with cli_register.staged_store(home, SECRET) as store:
        inside(store)


def fail_inside(home: Path, before_failing: Callable[[SqliteStore], object]) -> None:
    """Stage a store in ``home``, run ``before_failing`` on it, then raise :class:`Boom`."""
    with cli_register.staged_store(home, SECRET) as store:
        before_failing(store)
        raise Boom


def test_a_failure_removes_what_the_run_created(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    with pytest.raises(Boom):
        fail_inside(home, lambda store: store.put(NS_META, b"k", b"v"))
    assert list(tmp_path.iterdir()) == []


def test_a_failure_keeps_what_was_there(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mine.txt").write_text("not the client's")
    with pytest.raises(Boom):
        fail_inside(home, lambda _: None)
    assert [p.name for p in home.iterdir()] == ["mine.txt"]
    assert (home / "mine.txt").read_text() == "not the client's"


def test_a_failure_keeps_a_parent_that_got_other_files(tmp_path: Path) -> None:
    home = tmp_path / "parent" / "home"
    with pytest.raises(Boom):
        fail_inside(home, lambda _: (tmp_path / "parent" / "other").write_text("someone else's"))
    assert [p.name for p in (tmp_path / "parent").iterdir()] == ["other"]


def test_an_existing_store_is_never_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "state.db").write_bytes(b"an older store")
    with pytest.raises(StoreError, match="already holds"), cli_register.staged_store(home, SECRET):
        pytest.fail("the block must not run")
    assert [p.name for p in home.iterdir()] == ["state.db"]
    assert (home / "state.db").read_bytes() == b"an older store"


def test_a_store_appearing_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    home = tmp_path / "home"

    def race(_: SqliteStore) -> None:
        (home / "state.db").write_bytes(b"another run's store")

    with pytest.raises(StoreError, match="already holds"):
        stage(home, race)
    assert [p.name for p in home.iterdir()] == ["state.db"]
    assert (home / "state.db").read_bytes() == b"another run's store"
