"""``sealrelay keys init``: server keys into a data directory and/or a Kubernetes Secret that
``node.keys`` loads back, and ``node.k8s.secret_manifest`` refusing names that could bend
the YAML."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from node.errors import ConfigError
from node.k8s import secret_manifest
from node.keys import KEY_FILE, load_or_create
from sealrelay.cli import main

K8S_VERSION = "1.31.0"


def run_init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, dict[str, Any]]:
    status = main(["keys", "init", *args])
    out, err = capsys.readouterr()
    info = json.loads(err.splitlines()[0]) if status == 0 else {"error": err}
    return status, out, info


def secret_file(manifest: str) -> tuple[dict[str, Any], bytes]:
    secret = yaml.safe_load(manifest)
    return secret, base64.b64decode(secret["data"][KEY_FILE], validate=True)


@pytest.mark.parametrize("suite", ["cnsa2", "xwing"])
def test_k8s_secret_holds_loadable_server_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suite: str
) -> None:
    status, out, info = run_init(
        capsys, "--domain", "agency-a.example", "--suite", suite, "--k8s",
        "--namespace", "sealrelay-agency-a",
    )  # fmt: skip
    assert status == 0
    secret, content = secret_file(out)
    assert kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    assert secret["kind"] == "Secret"
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["name"] == "sealrelay-server-keys"
    assert secret["metadata"]["namespace"] == "sealrelay-agency-a"
    assert secret["metadata"]["annotations"] == {"sealrelay/domain": "agency-a.example"}
    assert set(secret["data"]) == {KEY_FILE}
    (tmp_path / KEY_FILE).write_bytes(content)
    keys = load_or_create(tmp_path, suite)
    assert keys.suite.name == suite
    assert keys.sig_key_id.hex() == info["sig_key_id"]
    assert keys.kem_key_id.hex() == info["kem_key_id"]
    assert info["file"] is None
    assert content.decode() not in info.values()


def test_data_and_k8s_write_the_same_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    status, out, info = run_init(
        capsys, "--domain", "agency-b.example", "--data", str(data), "--k8s",
        "--name", "other-keys",
    )  # fmt: skip
    assert status == 0
    secret, content = secret_file(out)
    assert secret["metadata"]["name"] == "other-keys"
    assert "namespace" not in secret["metadata"]
    path = data / KEY_FILE
    assert info["file"] == str(path)
    assert path.read_bytes() == content
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create(data, "cnsa2").sig_key_id.hex() == info["sig_key_id"]


def test_data_only_prints_nothing_and_never_replaces_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = run_init(capsys, "--domain", "a.example", "--data", str(tmp_path))
    assert status == 0
    assert out == ""
    before = (tmp_path / KEY_FILE).read_bytes()
    status, out, info = run_init(capsys, "--domain", "a.example", "--data", str(tmp_path), "--k8s")
    assert status == 2
    assert out == ""
    assert "already exist" in info["error"]
    assert (tmp_path / KEY_FILE).read_bytes() == before


@pytest.mark.parametrize(
    "args",
    [
        ["--domain", "a.example"],  # neither --data nor --k8s: the keys would be lost
        ["--domain", "a@example", "--k8s"],
        ["--domain", "a.example", "--k8s", "--namespace", "Bad_NS"],
        ["--domain", "a.example", "--k8s", "--name", "x\n  evil: true"],
    ],
)
def test_bad_arguments_exit_2_without_output(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    status, out, info = run_init(capsys, *args)
    assert status == 2
    assert out == ""
    assert info["error"].startswith("sealrelay: ")


def test_the_installed_command_pipes_a_manifest(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sealrelay", "keys", "init", "--domain", "agency-a.example"]
    done = subprocess.run(
        [*command, "--k8s", "--namespace", "ns-a"],
        capture_output=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    secret, content = secret_file(done.stdout.decode())
    assert secret["metadata"]["namespace"] == "ns-a"
    assert json.loads(content)["suite"] == "cnsa2"
    assert json.loads(done.stderr.decode().splitlines()[0])["event"] == "server_keys"


@pytest.mark.parametrize(
    ("name", "namespace", "key"),
    [
        ("a: b", None, "server-keys.json"),
        ("ok", "has space", "server-keys.json"),
        ("ok", None, 'x": "y'),
        ("ok", None, ".."),
        ("-leading", None, "server-keys.json"),
        ("x" * 254, None, "server-keys.json"),
    ],
)
def test_secret_manifest_refuses_names_that_bend_the_yaml(
    name: str, namespace: str | None, key: str
) -> None:
    with pytest.raises(ConfigError):
        secret_manifest(name, namespace, {key: b"x"})


def test_secret_manifest_keeps_every_byte_and_string_types() -> None:
    files = {"123": bytes(range(256)), "true": b"", "a.b-c_d": b"\x00"}
    text = secret_manifest("007", "null", files)
    secret = yaml.safe_load(text)
    assert secret["metadata"]["name"] == "007"
    assert secret["metadata"]["namespace"] == "null"
    decoded = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert decoded == files
    assert kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    with pytest.raises(ConfigError):
        secret_manifest("ok", None, {})
