"""``sealrelay keys show URL``: a node's key document as JSON, with whether its signatures
and root certifications verify."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from federation.documents import fingerprint
from node.errors import CommandError
from node.keys import KEY_FILE, generate, load
from node.keys_cli import describe_document
from node.rootkeys import certify, create_root
from suites import get_suite
from tests.integration.nodeproc import NodeProcess, run_cli
from wire import encode
from wire.server import ServerMedia

NOW = 1_800_000_000_000
DAY_MS = 86400 * 1000


def document(tmp_path: Path) -> tuple[bytes, str]:
    """A document of certified keys for a.test, and the root's fingerprint."""
    root = create_root(tmp_path / "root")
    keys = certify(generate(get_suite("cnsa2")), "a.test", root, NOW, 30)
    data = keys.key_document_bytes("a.test", ("http://127.0.0.1:1",), NOW, 86400)
    return data, fingerprint(root[0])


def test_a_certified_document_is_described_and_verified(tmp_path: Path) -> None:
    data, root = document(tmp_path)
    shown = describe_document(data, NOW + 1)
    assert shown["verified"] is True
    assert shown["error"] is None
    assert shown["domain"] == "a.test"
    assert shown["suite"] == "cnsa2"
    assert shown["issued"] == "2027-01-15T08:00:00Z"
    assert shown["valid_until"] == "2027-01-16T08:00:00Z"
    (key,) = shown["verify_keys"]
    assert shown["signed_by"] == [key["id"]]
    (cert,) = shown["certifications"]
    assert cert == {
        "root": root,
        "algorithm": cert["algorithm"],
        "domain": "a.test",
        "verify_key": key["fingerprint"],
        "issued": "2027-01-15T08:00:00Z",
        "not_after": "2027-02-14T08:00:00Z",
        "verified": True,
    }
    assert shown["media"] is None  # a version 1 document lists no QUIC endpoint
    json.dumps(shown)  # JSON-ready


def test_the_quic_media_endpoint_of_a_version_2_document_is_shown() -> None:
    keys = generate(get_suite("xwing"))
    data = keys.key_document_bytes("a.test", ("http://127.0.0.1:1",), NOW, 86400, 4433)
    shown = describe_document(data, NOW + 1)
    assert shown["verified"] is True
    assert shown["media"] == {"port": 4433, "pin": keys.quic_pin.hex()}
    assert len(bytes.fromhex(shown["media"]["pin"])) == 32
    json.dumps(shown)


def test_a_malformed_quic_endpoint_is_shown_but_does_not_verify() -> None:
    keys = generate(get_suite("xwing"))
    doc = keys.sign_document("a.test", ("http://127.0.0.1:1",), NOW, 86400, 4433)
    body = replace(doc.body, media=ServerMedia(4433, b"short pin"))
    data = encode(replace(doc, body=body))
    shown = describe_document(data, NOW + 1)
    assert shown["verified"] is False
    assert "pin" in shown["error"]
    assert shown["media"] == {"port": 4433, "pin": b"short pin".hex()}


def test_a_tampered_or_expired_document_does_not_verify(tmp_path: Path) -> None:
    data, _ = document(tmp_path)
    index = data.index(b"a.test")
    tampered = data[:index] + b"b" + data[index + 1 :]  # the body names b.test now
    shown = describe_document(tampered, NOW + 1)
    assert shown["domain"] == "b.test"
    assert shown["verified"] is False
    assert "signature" in shown["error"]
    assert describe_document(data, NOW + 2 * DAY_MS)["verified"] is False  # expired


def test_not_a_document() -> None:
    with pytest.raises(CommandError) as info:
        describe_document(b"<html>hello</html>", NOW)
    assert info.value.code == "keys.document"


def test_show_fetches_from_a_running_node(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "node", domain="show.test") as node:
        url = node.start()
        done = run_cli("keys", "show", url)
        keys = load(tmp_path / "node" / KEY_FILE)
    shown = json.loads(done.stdout)
    assert shown["verified"] is True
    assert shown["url"] == f"{url}/.well-known/sealrelay/server"
    assert shown["domain"] == "show.test"
    assert shown["endpoints"] == [url]
    assert [k["id"] for k in shown["verify_keys"]] == [keys.sig_key_id.hex()]
    assert [k["fingerprint"] for k in shown["verify_keys"]] == [fingerprint(keys.sig_public)]
    assert shown["kem_keys"][0]["id"] == keys.kem_key_id.hex()
    assert shown["valid_until"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_show_of_nothing_listening_is_one_line(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "node", domain="gone.test") as node:
        url = node.start()
    done = run_cli("keys", "show", url, check=False)  # the node has stopped
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"sealrelay: keys.fetch: cannot fetch {url}/.well-known")
    assert len(done.stderr.splitlines()) == 1
