"""The peer-roots statement on the node's side: made offline (``sealrelay keys peer-roots``),
stored in the data directory, served to clients (``GetPeerRoots``), and made by
``sealrelay dev up`` for every domain of a local federation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from client.domaintrust import listed_roots, verify_statement
from node.devfed import prepare
from node.errors import ConfigError
from node.keys import KEY_FILE, load, load_or_create, replace_key_file
from node.peerroots import (
    PEER_ROOTS_FILE,
    check_root_certifies,
    load_statement,
    make_statement,
    parse_peer,
    read_statement,
)
from node.rootkeys import ROOT_PUBLIC_FILE, certify, create_root, load_root_public
from node.session import Session
from sealrelay.cli import main
from suites import rootsig
from tests.node.harness import PEER, Device, call, enroll, make_relay
from wire.relay import GetPeerRoots, PeerRoots

HOME = "bravo.test"
FP = "sha256:" + "ab" * 32
NOW = int(time.time() * 1000)


def test_parse_peer() -> None:
    assert parse_peer(f" Alpha.Test = {FP}") == ("alpha.test", FP)
    assert parse_peer(f"alpha.test={FP.upper()}") == ("alpha.test", FP)
    for bad in ("alpha.test", f"={FP}", "alpha.test=sha256:abc", f"alpha.test={FP[7:]}"):
        with pytest.raises(ConfigError):
            parse_peer(bad)


def test_make_statement_refuses_nonsense() -> None:
    root = rootsig.generate()
    with pytest.raises(ConfigError, match="home domain"):
        make_statement(root, HOME, {HOME: [FP]}, NOW, 30)
    with pytest.raises(ConfigError, match="days"):
        make_statement(root, HOME, {"alpha.test": [FP]}, NOW, 0)
    with pytest.raises(ConfigError, match="root fingerprints"):
        make_statement(root, HOME, {"alpha.test": []}, NOW, 30)


@pytest.fixture
def agency(tmp_path: Path) -> tuple[Path, Path]:
    """A data directory whose server keys the root in the second directory certified."""
    data, root_dir = tmp_path / "data", tmp_path / "root"
    keys = load_or_create(data, "xwing")
    replace_key_file(data, certify(keys, HOME, create_root(root_dir), NOW, 30))
    return data, root_dir


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_command_signs_what_the_clients_check(
    agency: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, root_dir = agency
    base = ("keys", "peer-roots", "--root", str(root_dir), "--data", str(data))
    status, out, _ = _cli(capsys, *base, "--domain", HOME, "--peer", f"alpha.test={FP}")
    assert status == 0
    assert json.loads(out)["peers"] == ["alpha.test"]
    served = load_statement(data / PEER_ROOTS_FILE)
    assert served is not None
    assert served.root_public == load_root_public(root_dir / ROOT_PUBLIC_FILE)
    body = verify_statement((data / PEER_ROOTS_FILE).read_bytes(), HOME, (served.root_public,), NOW)
    assert listed_roots(body, "alpha.test") == {FP}


def test_the_command_refuses_with_one_line(
    agency: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, root_dir = agency
    other_root = tmp_path / "other-root"
    create_root(other_root)
    cases = {
        "no peer": ("--root", str(root_dir), "--domain", HOME),
        "bad peer": ("--root", str(root_dir), "--domain", HOME, "--peer", "alpha.test=x"),
        "a root that did not certify": (
            *("--root", str(other_root), "--domain", HOME, "--peer", f"alpha.test={FP}"),
        ),
    }
    for what, args in cases.items():
        status, out, err = _cli(capsys, "keys", "peer-roots", "--data", str(data), *args)
        assert status == 2, what
        assert err.startswith("sealrelay: "), (what, err)
        assert err.count("\n") == 1, (what, err)
        assert out == "", what
    assert not (data / PEER_ROOTS_FILE).exists()


def test_check_root_certifies(agency: tuple[Path, Path]) -> None:
    data, _ = agency
    keys = load(data / KEY_FILE)
    check_root_certifies(keys, HOME, keys.certifications[0].root_public)
    with pytest.raises(ConfigError):
        check_root_certifies(keys, "alpha.test", keys.certifications[0].root_public)


async def test_the_node_serves_the_statement_it_holds(tmp_path: Path) -> None:
    relay = make_relay(data_dir=str(tmp_path))
    session = await enroll(relay, Device.create("carol"))
    assert await call(session, GetPeerRoots(5)) == [PeerRoots(5, None)]
    statement = make_statement(rootsig.generate(), HOME, {"alpha.test": [FP]}, NOW, 30)
    (tmp_path / PEER_ROOTS_FILE).write_bytes(statement)
    assert await call(session, GetPeerRoots(6)) == [PeerRoots(6, statement)]
    (tmp_path / PEER_ROOTS_FILE).write_bytes(b"not a statement")
    assert await call(session, GetPeerRoots(7)) == [PeerRoots(7, None)]
    assert await read_statement("") is None
    anonymous = Session(relay, PEER)
    anonymous.hello()
    (refused,) = await call(anonymous, GetPeerRoots(8))
    assert not isinstance(refused, PeerRoots)


def test_dev_up_signs_each_domains_statement_once(tmp_path: Path) -> None:
    domains = ["alpha.test", "bravo.test", "charlie.test"]
    setups = prepare(tmp_path, domains, [1, 2, 3], suite="xwing")
    roots = {s.domain: s.root_fingerprint for s in setups}
    made = {}
    for setup in setups:
        raw = (setup.data_dir / PEER_ROOTS_FILE).read_bytes()
        statement = load_statement(setup.data_dir / PEER_ROOTS_FILE)
        assert statement is not None
        assert rootsig.fingerprint(statement.root_public) == roots[setup.domain]
        body = verify_statement(raw, setup.domain, (statement.root_public,), NOW)
        for other in domains:
            expected = frozenset() if other == setup.domain else {roots[other]}
            assert listed_roots(body, other) == expected
        made[setup.domain] = raw
    prepare(tmp_path, domains, [1, 2, 3], suite="xwing")
    for setup in setups:
        assert (setup.data_dir / PEER_ROOTS_FILE).read_bytes() == made[setup.domain]
    # A federation of two: the statements name only the remaining peer.
    prepare(tmp_path, domains[:2], [1, 2], suite="xwing")
    raw = (tmp_path / "alpha.test" / PEER_ROOTS_FILE).read_bytes()
    statement = load_statement(tmp_path / "alpha.test" / PEER_ROOTS_FILE)
    assert statement is not None
    body = verify_statement(raw, "alpha.test", (statement.root_public,), NOW)
    assert [p.domain for p in body.peers] == ["bravo.test"]
