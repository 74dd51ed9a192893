"""``sealrelay client register`` against a real node: all or nothing, and the rules of a new
passphrase (at register only; opening an existing store imposes none)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from client import persist
from client.records import DeviceRecord, TrustRecord
from client.store.base import NS_ACCOUNT, NS_IDENTITIES
from client.store.sqlite import SqliteStore
from tests.integration.nodeproc import NodeProcess, invite, json_lines, run_cli
from wire import decode, encode

DOMAIN = "account.test"


@dataclass
class Node:
    proc: NodeProcess
    url: str


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("cliaccount")
    with NodeProcess(root / "node", domain=DOMAIN) as proc:
        yield Node(proc, proc.start())


def register(node: Node, name: str, home: Path, code: str, secret: str) -> tuple[int, str, str]:
    result = run_cli(
        *("client", "register", f"{name}@{DOMAIN}", "--node", node.url, "--code", code),
        *("--home", str(home)),
        env={"SEALRELAY_PASSPHRASE": secret, "SEALRELAY_TIMEOUT": "60"},
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def info(home: Path, secret: str) -> dict[str, object]:
    env = {"SEALRELAY_PASSPHRASE": secret}
    (out,) = json_lines(run_cli("client", "info", "--home", str(home), env=env).stdout)
    return out


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (``None`` for a directory, the bytes for a file)."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def test_a_failed_register_leaves_no_home_and_a_retry_succeeds(node: Node, tmp_path: Path) -> None:
    home = tmp_path / "new" / "erin"
    status, out, err = register(node, "erin", home, "BAD-CODE-0000", "first passphrase here")
    assert status == 1
    assert out == ""
    assert "auth.bad_code" in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # neither the home nor its new parent is left

    code = invite(node.proc.data_dir, "erin")
    status, out, err = register(node, "erin", home, code, "another passphrase now")
    assert status == 0, err
    assert json_lines(out) == [{"address": f"erin@{DOMAIN}", "device": 1}]
    assert info(home, "another passphrase now")["address"] == f"erin@{DOMAIN}"
    assert sorted(p.name for p in home.iterdir()) == ["state.db"]
    assert home.stat().st_mode & 0o777 == 0o700


def test_a_failed_register_leaves_an_existing_home_as_it_was(node: Node, tmp_path: Path) -> None:
    home = tmp_path / "frank"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "todo.txt").write_text("mine, not the client's")
    (home / "keep.json").write_text(json.dumps({"x": 1}))
    before = tree(home)
    status, _, err = register(node, "frank", home, "BAD-CODE-0000", "frank's first try")
    assert status == 1
    assert "auth.bad_code" in err
    assert tree(home) == before

    code = invite(node.proc.data_dir, "frank")
    status, _, err = register(node, "frank", home, code, "frank's second try")
    assert status == 0, err
    after = tree(home)
    assert set(after) == {*before, "state.db"}
    assert {k: v for k, v in after.items() if k != "state.db"} == before


def test_register_refuses_a_home_that_holds_an_account(node: Node, tmp_path: Path) -> None:
    home = tmp_path / "gina"
    code = invite(node.proc.data_dir, "gina")
    assert register(node, "gina", home, code, "gina's passphrase")[0] == 0
    before = tree(home)
    code = invite(node.proc.data_dir, "gina2")
    status, _, err = register(node, "gina2", home, code, "gina's passphrase")
    assert status == 1
    assert err.startswith("sealrelay: client.store_error: ")
    assert "already holds an account" in err
    assert tree(home) == before


@pytest.mark.parametrize(
    ("secret", "rule"),
    [
        ("short one", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "repeated"),
        ("abcabcabcabcabc", "repeated"),
        ("abcdefghijklmnop", "consecutive"),
        ("194719471947231", "only digits"),
        ("Hank@Account.Test", "address or name"),
        ("hankhankhankhank2", None),  # not a pure repetition: fine
    ],
)
def test_register_refuses_a_weak_passphrase(
    node: Node, tmp_path: Path, secret: str, rule: str | None
) -> None:
    home = tmp_path / "hank"
    status, out, err = register(node, "hank", home, "BAD-CODE-0000", secret)
    assert status == 1
    assert out == ""
    if rule is None:
        assert "auth.bad_code" in err  # the passphrase passed; the code did not
    else:
        assert err.startswith("sealrelay: client.weak_passphrase: ")
        assert rule in err
        assert secret not in err
    assert len(err.strip().splitlines()) == 1
    assert not home.exists()


def test_opening_an_existing_store_imposes_no_rule(node: Node, tmp_path: Path) -> None:
    """A store whose passphrase predates the rules (here: changed to a short one) opens."""
    home = tmp_path / "ivy"
    code = invite(node.proc.data_dir, "ivy")
    assert register(node, "ivy", home, code, "ivy's long passphrase")[0] == 0
    store = SqliteStore.open(home / "state.db", "ivy's long passphrase")
    try:
        store.change_passphrase("ivy's long passphrase", "ivy")
    finally:
        store.close()
    assert info(home, "ivy")["address"] == f"ivy@{DOMAIN}"


def test_the_home_defaults_to_sealrelay_home(node: Node, tmp_path: Path) -> None:
    home = tmp_path / "jo"
    env = {"SEALRELAY_PASSPHRASE": "jo's passphrase", "SEALRELAY_HOME": str(home)}
    code = invite(node.proc.data_dir, "jo")
    run_cli("client", "register", f"jo@{DOMAIN}", "--node", node.url, "--code", code, env=env)
    assert (home / "state.db").is_file()
    (out,) = json_lines(run_cli("client", "info", env=env).stdout)
    assert out["address"] == f"jo@{DOMAIN}"
    other = {**env, "SEALRELAY_HOME": str(tmp_path / "nobody")}  # --home wins over it
    (out,) = json_lines(run_cli("client", "info", "--home", str(home), env=other).stdout)
    assert out["address"] == f"jo@{DOMAIN}"


def test_verify_accept_is_remembered_for_that_identity_only(node: Node, tmp_path: Path) -> None:
    secret = "kim and lee's test phrase"  # noqa: S105 (a test passphrase)
    env = {"SEALRELAY_PASSPHRASE": secret, "SEALRELAY_TIMEOUT": "60"}
    kim, lee = tmp_path / "kim", tmp_path / "lee"
    for name, home in (("kim", kim), ("lee", lee)):
        code = invite(node.proc.data_dir, name)
        assert register(node, name, home, code, secret)[0] == 0, name
    lee_address = f"lee@{DOMAIN}"
    run_cli("client", "send", "--home", str(kim), lee_address, "hello lee", env=env)

    def verify(*extra: str) -> dict[str, object]:
        args = ("client", "verify", "--home", str(kim), lee_address, *extra)
        (out,) = json_lines(run_cli(*args, env=env).stdout)
        return out

    first = verify()
    assert (first["accepted"], first["identity_changed"]) == (False, False)
    assert verify("--accept")["accepted"] is True
    again = verify()  # remembered across runs
    assert (again["accepted"], again["identity_changed"]) == (True, False)
    assert again["safety_number"] == first["safety_number"]

    # Lee's identity key changes (here: kim's store is told of another key for lee).
    store = SqliteStore.open(kim / "state.db", secret)
    try:
        own = decode(store.get(NS_ACCOUNT, persist.DEVICE_SLOT) or b"", DeviceRecord).identity
        changed = TrustRecord(identity=encode(own), accepted=False)
        store.put(NS_IDENTITIES, lee_address.encode(), encode(changed))
    finally:
        store.close()
    after = verify()
    assert (after["accepted"], after["identity_changed"]) == (False, True)
    assert after["safety_number"] != first["safety_number"]
    blocked = run_cli("client", "send", "--home", str(kim), lee_address, "hi", env=env, check=False)
    assert blocked.returncode == 1
    assert "client.untrusted_identity" in blocked.stderr
    accepted = verify("--accept")
    assert (accepted["accepted"], accepted["identity_changed"]) == (True, False)
    assert verify()["accepted"] is True


def test_a_group_is_named_by_its_id_or_its_unique_name(node: Node, tmp_path: Path) -> None:
    secret = "mia and ned's test phrase"  # noqa: S105 (a test passphrase)
    env = {"SEALRELAY_PASSPHRASE": secret, "SEALRELAY_TIMEOUT": "60"}
    mia, ned = tmp_path / "mia", tmp_path / "ned"
    for name, home in (("mia", mia), ("ned", ned)):
        code = invite(node.proc.data_dir, name)
        assert register(node, name, home, code, secret)[0] == 0, name

    def group(home: Path, *args: str, check: bool = True) -> CompletedProcess[str]:
        return run_cli("client", "group", *args, "--home", str(home), env=env, check=check)

    (solo,) = json_lines(group(mia, "create", "solo", "--member", f"ned@{DOMAIN}").stdout)
    twins = [json_lines(group(mia, "create", "twin").stdout)[0]["group"] for _ in range(2)]

    (sent,) = json_lines(group(mia, "send", "solo", "by name").stdout)
    assert sent["group"] == solo["group"]
    assert sent["failed"] == 0
    (sent_by_id,) = json_lines(group(mia, "send", solo["group"], "by id").stdout)
    assert sent_by_id["group"] == solo["group"]
    args = ("client", "receive", "--home", str(ned), "--wait", "1")
    got = {m["text"]: m for m in json_lines(run_cli(*args, env=env).stdout)}
    assert got["by name"]["group"] == solo["group"]
    assert got["by id"]["group"] == solo["group"]

    ambiguous = group(mia, "send", "twin", "which one?", check=False)
    assert ambiguous.returncode == 2
    assert ambiguous.stdout == ""
    (line,) = ambiguous.stderr.splitlines()
    assert line.startswith("sealrelay: usage: 2 groups are named 'twin': use the group id")
    assert all(gid in line for gid in twins)
    unknown = group(mia, "add", "nosuch", f"ned@{DOMAIN}", check=False)
    assert unknown.returncode == 2
    (line,) = unknown.stderr.splitlines()
    assert line.startswith("sealrelay: usage: no group named 'nosuch'")
