"""Configuration loading and the server's keys, key document and certificates."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
import trio

from node import cli
from node.accounts import format_code, parse_code
from node.config import Config, load_config, parse_listen
from node.errors import ConfigError
from node.keys import KEY_FILE, key_id, load_or_create
from node.store import open_store
from sealrelay.cli import main
from suites import InvalidSignature, get_suite, labels
from wire import decode, encode
from wire.server import ServerKeyDocument

# --- configuration -----------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_defaults_file_env_and_overrides_in_that_order(tmp_path: Path) -> None:
    path = write(tmp_path, 'domain = "file.test"\ndata_dir = "d"\nmax_blob_bytes = 1000\n')
    env = {"SEALRELAY_MAX_BLOB_BYTES": "2000", "SEALRELAY_RATE_IP_PER_S": "2.5", "HOME": "x"}
    config = load_config(path, env, {"domain": "cli.test", "listen_port": None})
    assert config.domain == "cli.test"
    assert config.max_blob_bytes == 2000
    assert config.rate_ip_per_s == 2.5
    assert config.suite == "cnsa2"
    assert config.store == "sqlite"
    assert config.max_envelope_bytes == 256 * 1024
    assert config.listen_port == 7480


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('domain = "a.test"\ndata_dir = "d"\nsuite = "rsa"\n', "suite"),
        ('domain = "a.test"\ndata_dir = "d"\nstore = "redis"\n', "store"),
        ('domain = "a.test"\ndata_dir = "d"\nmax_envelope_bytes = 2000000\n', "max_envelope"),
        ('domain = "a.test"\ndata_dir = "d"\nmax_ttl = "long"\n', "max_ttl"),
        ('domain = "a.test"\ndata_dir = "d"\nbogus = 1\n', "bogus"),
        ('domain = "a.test"\ndata_dir = "d"\ndefault_ttl = 0\n', "default_ttl"),
        ('data_dir = "d"\n', "domain"),
        ("domain = [\n", "TOML"),
    ],
)
def test_invalid_configuration_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(write(tmp_path, text), {})


@pytest.mark.parametrize(
    "text",
    [
        'domain = "a.test"\ndata_dir = "d"\nsuite = "rsa"\n',
        'domain = "a.test"\ndata_dir = "d"\nstore = "redis"\n',
    ],
)
def test_invalid_value_points_to_the_documented_table(tmp_path: Path, text: str) -> None:
    """The message names the document and section that list every key, and they exist."""
    with pytest.raises(ConfigError, match=r"\(see docs/operations\.md, Configuration\)"):
        load_config(write(tmp_path, text), {})
    root = Path(__file__).resolve().parents[2]
    assert "\n## Configuration\n" in (root / "docs" / "operations.md").read_text()


def test_invalid_environment_value() -> None:
    env = {"SEALRELAY_MAX_BLOB_BYTES": "lots"}
    with pytest.raises(ConfigError, match="SEALRELAY_MAX_BLOB_BYTES"):
        load_config(None, env, {"domain": "a.test", "data_dir": "d"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/node.toml", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:8080", ("::1", 8080)), ("h:65535", ("h", 65535))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["nohost", ":80", "h:port", "h:70000"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


def test_serve_with_invalid_configuration_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, "suite = 'none'\n")
    args = ["node", "serve", "--domain", "a.test", "--listen", "127.0.0.1:0"]
    assert main([*args, "--data", str(tmp_path), "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("sealrelay: config.invalid: invalid value for suite")


async def test_admin_invite_prints_the_code_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    await (await open_store("sqlite", data)).aclose()  # a node's data directory
    args = argparse.Namespace(name="alice", data=str(data), ttl=60)
    assert await trio.to_thread.run_sync(cli.admin_invite, args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert parse_code(lines[0]) is not None
    bad = argparse.Namespace(name="Not Valid", data=str(data), ttl=60)
    with pytest.raises(ConfigError, match="invalid account name"):
        cli.admin_invite(bad)


def test_codes_round_trip() -> None:
    raw = bytes(range(16))
    text = format_code(raw)
    assert len(text.replace("-", "")) == 26
    assert parse_code(text) == raw
    assert parse_code(text.lower().replace("-", " ")) == raw
    assert parse_code(text[:-1]) is None
    assert parse_code(text + "A") is None


# --- keys ------------------------------------------------------------------------------------


def test_keys_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "data", "xwing")
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = load_or_create(tmp_path / "data", "xwing")
    assert second.sig_public == first.sig_public
    assert second.kem_public == first.kem_public
    assert first.sig_key_id == key_id(first.sig_public)
    assert len(first.sig_key_id) == 16
    with pytest.raises(ConfigError, match="suite"):
        load_or_create(tmp_path / "data", "cnsa2")


def test_corrupt_key_file(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_or_create(tmp_path, "xwing")


@pytest.mark.parametrize("suite_name", ["cnsa2", "xwing"])
def test_key_document_verifies_with_suites(tmp_path: Path, suite_name: str) -> None:
    keys = load_or_create(tmp_path, suite_name)
    suite = get_suite(suite_name)
    now = 1_800_000_000_000
    data = keys.key_document_bytes("a.test", ("https://a.test",), now, 7 * 86400)
    doc = decode(data, ServerKeyDocument)
    body = doc.body
    assert (body.server, body.suite, body.endpoints) == (
        "a.test",
        suite.suite_id,
        ("https://a.test",),
    )
    assert body.valid_until == now + 7 * 86400 * 1000
    (entry,) = body.verify_keys
    (signature,) = doc.signatures
    assert entry.id == signature.key_id == key_id(entry.public)
    suite.sig.verify(
        entry.public, encode(body), signature.signature, labels.CTX_SERVER_KEY_DOCUMENT
    )
    with pytest.raises(InvalidSignature):
        suite.sig.verify(
            entry.public, encode(body), signature.signature, labels.CTX_SENDER_CERTIFICATE
        )
    (kem,) = body.kem_keys
    assert kem.public == keys.kem_public
    # cached while fresh, re-signed once a tenth of its life has passed
    assert keys.key_document_bytes("a.test", ("https://a.test",), now + 1000, 7 * 86400) == data
    later = keys.key_document("a.test", ("https://a.test",), now + 86400 * 1000, 7 * 86400)
    assert later.body.issued == now + 86400 * 1000


def test_config_is_frozen() -> None:
    config = Config(domain="a.test", data_dir="d")
    with pytest.raises(AttributeError):
        config.domain = "b.test"  # type: ignore[misc]
