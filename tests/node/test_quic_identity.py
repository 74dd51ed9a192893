"""The node's QUIC identity (``node.keys``) and its UDP listen address (``node.config``):
created on first start, kept in ``server-keys.json`` (0600), loaded on restart, rotated
with the server keys, and listed in the key document given a media port."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest

from node import cli
from node import keys as keys_module
from node.config import Config, load_config
from node.errors import CONFIG_INVALID, ConfigError
from node.keys import (
    KEY_FILE,
    KEY_FILE_VERSION,
    generate,
    key_file_bytes,
    load,
    load_or_create,
    replace_key_file,
)
from sealrelay.cli import build_parser
from suites import get_suite
from transport import QuicIdentity
from trust import documents
from trust.errors import MEDIA_PORT, MediaRefused
from trust.media import media_endpoint, media_pin
from wire import encode
from wire.server import ServerKeyDocumentBody, ServerKeyDocumentBodyV2

NOW = 1_800_000_000_000
LIFETIME_S = 86_400
DOMAIN = "b.example"
ENDPOINTS = ("https://b.example",)

# --- the identity in the key file ------------------------------------------------------------


def test_created_on_first_start_private_and_loaded_on_restart(tmp_path: Path) -> None:
    keys = load_or_create(tmp_path, "cnsa2")
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["version"] == KEY_FILE_VERSION == 3
    assert "PRIVATE KEY" in data["quic"]["key"]
    again = load_or_create(tmp_path, "cnsa2")
    assert again.quic == keys.quic
    assert again.quic_pin == keys.quic_pin == keys.quic.pin.sha256
    assert QuicIdentity.from_pem(again.quic.certificate_pem, again.quic.private_key_pem)


def test_the_private_key_does_not_show_in_a_repr(tmp_path: Path) -> None:
    keys = load_or_create(tmp_path, "xwing")
    assert "PRIVATE" not in repr(keys)
    assert keys.quic.private_key_pem.decode() not in repr(keys)


def _legacy(path: Path, version: int = 2) -> dict[str, object]:
    """``server-keys.json`` as nodes wrote it before the QUIC identity."""
    data = json.loads(key_file_bytes(generate(get_suite("cnsa2"))))
    del data["quic"]
    data["version"] = version
    path.write_text(json.dumps(data))
    return data


def test_an_older_key_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    before = _legacy(path)
    keys = load_or_create(tmp_path, "cnsa2")
    after = json.loads(path.read_text())
    assert after["version"] == KEY_FILE_VERSION
    assert after["sig"] == before["sig"]
    assert after["kem"] == before["kem"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create(tmp_path, "cnsa2").quic_pin == keys.quic_pin


def test_a_linked_older_key_file_is_not_replaced(tmp_path: Path) -> None:
    """A mounted Secret: the node makes a QUIC identity for itself, and keeps the link."""
    secret = tmp_path / "secret.json"
    before = _legacy(secret, version=1)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / KEY_FILE).symlink_to(secret)
    keys = load_or_create(data_dir, "cnsa2")
    assert (data_dir / KEY_FILE).is_symlink()
    assert json.loads(secret.read_text()) == before
    assert len(keys.quic_pin) == 32


def test_an_older_key_file_that_cannot_be_replaced_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only file (a bind-mounted Secret): the identity stays in memory."""
    path = tmp_path / KEY_FILE
    before = _legacy(path)

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(keys_module.os, "replace", refuse)
    keys = load_or_create(tmp_path, "cnsa2")
    assert json.loads(path.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]  # no .tmp left
    assert len(keys.quic_pin) == 32


@pytest.mark.parametrize("version", [2, 3])
def test_a_file_whose_version_and_identity_disagree_is_refused(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / KEY_FILE
    data = json.loads(key_file_bytes(generate(get_suite("cnsa2"))))
    if version == 3:
        del data["quic"]
    data["version"] = version
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="file version"):
        load(path)


def test_a_quic_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    data = json.loads(key_file_bytes(generate(get_suite("cnsa2"))))
    data["quic"]["key"] = QuicIdentity.generate().private_key_pem.decode()
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="cannot read"):
        load(path)


def test_rotation_replaces_the_quic_key_and_certification_keeps_it(tmp_path: Path) -> None:
    keys = load_or_create(tmp_path, "cnsa2")
    rotated = keys.rotated(NOW, 3600)
    assert rotated.quic_pin != keys.quic_pin
    replace_key_file(tmp_path, rotated)
    assert load(tmp_path / KEY_FILE).quic_pin == rotated.quic_pin
    doc = rotated.sign_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, 7443)
    assert media_pin(doc) == rotated.quic_pin  # one current key: only the new pin listed


# --- the document -----------------------------------------------------------------------------


def test_the_document_lists_the_endpoint_only_given_a_port(tmp_path: Path) -> None:
    keys = load_or_create(tmp_path, "cnsa2")
    plain = keys.key_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S)
    assert type(plain.body) is ServerKeyDocumentBody
    with_media = keys.key_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, media_port=7443)
    assert isinstance(with_media.body, ServerKeyDocumentBodyV2)  # re-signed for the port
    data = keys.key_document_bytes(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, media_port=7443)
    assert data == encode(with_media)
    endpoint = media_endpoint(documents.verify_document(data, DOMAIN, NOW))
    assert endpoint is not None
    assert (endpoint.port, endpoint.pin) == (7443, keys.quic_pin)


def test_a_document_never_lists_port_0(tmp_path: Path) -> None:
    """udp_listen may bind port 0; the document must name the port actually bound."""
    keys = load_or_create(tmp_path, "cnsa2")
    with pytest.raises(MediaRefused) as caught:
        keys.key_document(DOMAIN, ENDPOINTS, NOW, LIFETIME_S, media_port=0)
    assert caught.value.code == MEDIA_PORT


# --- udp_listen ---------------------------------------------------------------------------------

BASE = {"domain": "a.test", "data_dir": "d"}


def test_udp_listen_is_off_by_default() -> None:
    config = load_config(None, {}, BASE)
    assert config.udp_listen == ""
    assert config.udp_address() is None


def test_udp_listen_from_file_env_and_flag_in_that_order(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('domain = "a.test"\ndata_dir = "d"\nudp_listen = "127.0.0.1:7000"\n')
    assert load_config(path, {}).udp_address() == ("127.0.0.1", 7000)
    env = {"SEALRELAY_UDP_LISTEN": "[::1]:7001"}
    assert load_config(path, env).udp_address() == ("::1", 7001)
    args = argparse.Namespace(
        domain=None, data=None, listen=None, udp_listen="0.0.0.0:0", config=str(path)
    )
    assert cli._config(args).udp_address() == ("0.0.0.0", 0)  # noqa: S104 - a test value
    args.udp_listen = None
    assert cli._config(args).udp_address() == ("127.0.0.1", 7000)


@pytest.mark.parametrize("text", ["7000", ":7000", "h:port", "h:70000", "nohost:"])
def test_an_invalid_udp_listen_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"udp_listen.*see docs/operations\.md") as caught:
        load_config(None, {"SEALRELAY_UDP_LISTEN": text}, BASE)
    assert caught.value.code == CONFIG_INVALID


def test_udp_listen_is_a_string_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('domain = "a.test"\ndata_dir = "d"\nudp_listen = 7000\n')
    with pytest.raises(ConfigError, match="udp_listen"):
        load_config(path, {})


def test_the_flag_is_on_node_serve() -> None:
    args = build_parser().parse_args(
        ["node", "serve", "--domain", "a.test", "--data", "d", "--udp-listen", "127.0.0.1:0"]
    )
    assert args.udp_listen == "127.0.0.1:0"
    assert isinstance(cli._config(args), Config)
