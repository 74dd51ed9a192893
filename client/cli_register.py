"""``sealrelay client register``: enroll an account into a new home, all or nothing.

The state is built in a temporary file beside its final place (``.state.db.*.tmp`` in the
home) and linked to ``state.db`` only once enrollment succeeded. On any failure or
interrupt this run removes exactly what it created: the temporary file and its SQLite
journals, then the home directory and its parents if this run made them and they are still
empty. It never removes or replaces anything that was there before; a home that already
holds ``state.db`` is refused.

The new passphrase comes from ``$SEALRELAY_PASSPHRASE`` or is asked for twice (the two must
match); either way it must meet the rules of :mod:`client.passphrase`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from client import passphrase as rules
from client.cli import (
    EXIT_OK,
    HOME_MODE,
    PASSPHRASE_ENV,
    STORE_FILE,
    UsageError,
    _emit,
    _main,
)
from client.enroll import enroll
from client.errors import PassphraseMismatch, StoreError
from client.store.sqlite import SqliteStore

JOURNAL_SUFFIXES: Final = ("-wal", "-shm", "-journal")
"""Files SQLite may keep beside a database (removed with a staged store)."""


def register(args: argparse.Namespace) -> int:
    return _main(_register, args)


async def _register(args: argparse.Namespace) -> int:
    if "@" not in args.address:
        raise UsageError("the address must be NAME@DOMAIN")
    home = Path(args.home)
    _refuse_existing(home)
    secret = new_passphrase(args.address)
    with staged_store(home, secret) as store:
        device = await enroll(
            store,
            args.address,
            args.node,
            args.code,
            args.suite,
            introductions=not args.no_introductions,
        )
    _emit({"address": device.address, "device": device.device_id})
    return EXIT_OK


def new_passphrase(address: str) -> str:
    """The passphrase of a new store: ``$SEALRELAY_PASSPHRASE`` or asked twice, checked."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        value = _ask("new passphrase for the client state: ")
        if _ask("the same passphrase again: ") != value:
            raise PassphraseMismatch("the two passphrases differ; nothing was registered")
    if not value:
        raise UsageError("an empty passphrase is not allowed")
    rules.check(value, address)
    return value


def _ask(prompt: str) -> str:
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise UsageError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal") from None


def _refuse_existing(home: Path) -> None:
    if (home / STORE_FILE).exists():
        raise StoreError(f"{home} already holds an account")


@contextmanager
def staged_store(home: Path, secret: str) -> Iterator[SqliteStore]:
    """A new store in a temporary file in ``home``, moved to ``home/state.db`` when the
    block succeeds; on any exception everything this call created is removed again."""
    made: list[Path] = []
    staged: Path | None = None
    done = False
    try:
        with _os_errors(home):
            _make_home(home, made)
            _refuse_existing(home)
            fd, name = tempfile.mkstemp(prefix=f".{STORE_FILE}.", suffix=".tmp", dir=home)
            os.close(fd)
            staged = Path(name)
        store = SqliteStore.open(staged, secret)
        try:
            yield store
        finally:
            store.close()
        with _os_errors(home):
            _install(staged, home / STORE_FILE)
        done = True
    finally:
        if not done:
            if staged is not None:
                _remove_staged(staged)
            _remove_dirs(made)


def _make_home(home: Path, made: list[Path]) -> None:
    """Create ``home`` (mode 0700) and its missing parents, adding each one created to the
    front of ``made`` (so it lists them deepest first)."""
    missing = []
    path = home
    while not path.exists() and not path.is_symlink():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=HOME_MODE if directory == home else 0o777)
        made.insert(0, directory)


def _install(staged: Path, target: Path) -> None:
    """Link the closed store ``staged`` to ``target`` (never over an existing file)."""
    if any(_sibling(staged, suffix).exists() for suffix in JOURNAL_SUFFIXES):
        raise StoreError("the new store was not fully written")
    try:
        os.link(staged, target)
    except FileExistsError:
        raise StoreError(f"{target.parent} already holds an account") from None
    staged.unlink()


def _remove_staged(staged: Path) -> None:
    for path in (staged, *(_sibling(staged, s) for s in JOURNAL_SUFFIXES)):
        path.unlink(missing_ok=True)


def _remove_dirs(made: list[Path]) -> None:
    for directory in made:
        try:
            directory.rmdir()
        except OSError:
            return  # something else is in it now: leave it


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


@contextmanager
def _os_errors(home: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StoreError(f"cannot write the client state in {home}: {exc.strerror}") from None
