"""The node pod's layout, run for real on loopback: the server keys Secret made by
``sealrelay keys init --k8s`` (and a peer-roots statement Secret) laid out as the kubelet
lays out a Secret volume, the init container's links into the data directory, the
rendered node.toml (its ``[peers]`` tables cut off, so nothing can leave loopback) over a
real Redis with Sentinel, and the node process. It serves the Secret's keys, becomes
ready, picks up an updated Secret without a restart (rotation), takes an invite made with
the pod's environment, and drains on SIGTERM within the pod's grace period."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from node.keys import KEY_FILE
from node.peerroots import PEER_ROOTS_FILE, make_statement
from suites import rootsig
from tests.integration.nodeproc import NodeProcess, invite, run_cli
from tests.k8s.rendered import KEYS_MOUNT, PEER_ROOTS_MOUNT, configmap, node_toml, one
from tests.redisproc import SentinelSet
from trust.media import media_endpoint
from wire import decode
from wire.server import ServerKeyDocument

TARGET = "overlays/agency-a"
DOCUMENT = "/.well-known/sealrelay/server"
RELOAD_TIMEOUT = 30.0
PEER_FP = "sha256:" + "ab" * 32


def keys_secret(domain: str) -> tuple[bytes, str]:
    """server-keys.json out of the Secret ``keys init --k8s`` prints, and its signing key id."""
    done = run_cli("keys", "init", "--domain", domain, "--k8s", "--namespace", "sealrelay-a")
    secret = yaml.safe_load(done.stdout)
    key_id = json.loads(done.stderr.splitlines()[0])["sig_key_id"]
    return base64.b64decode(secret["data"][KEY_FILE]), key_id


def kubelet_secret(directory: Path, files: dict[str, bytes], version: str) -> None:
    """Lay ``files`` out as the kubelet does for a Secret volume: a new hidden directory,
    ``..data`` pointing at it (swapped atomically on an update), and one link per key
    through ``..data``."""
    directory.mkdir(exist_ok=True)
    stamp = directory / f"..{version}"
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_bytes(content)
    staged = directory / "..data_tmp"
    staged.symlink_to(stamp.name)
    os.replace(staged, directory / "..data")
    for name in files:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


def run_init_container(secrets: Path, peer_roots: Path, data: Path) -> None:
    """The init container's command, with the pod's paths mapped onto the test's."""
    pod = one(TARGET, "Deployment", "sealrelay-node")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    data_dir = node_toml(TARGET)["data_dir"]
    mapped = [
        a.replace(KEYS_MOUNT, str(secrets))
        .replace(PEER_ROOTS_MOUNT, str(peer_roots))
        .replace(data_dir, str(data))
        for a in init["command"]
    ]
    data.mkdir()
    subprocess.run(mapped, check=True, timeout=30)


def pod_environment(sentinels: list[tuple[str, int]]) -> dict[str, str]:
    """The node container's plain environment, its Sentinels mapped onto the test's."""
    (container,) = one(TARGET, "Deployment", "sealrelay-node")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["SEALRELAY_REDIS_SENTINELS"] = ",".join(f"{h}:{p}" for h, p in sentinels)
    return env


def served_key_id(url: str) -> str:
    response = httpx.get(url + DOCUMENT, timeout=10)
    assert response.status_code == 200
    document = decode(response.content, ServerKeyDocument)
    return document.signatures[0].key_id.hex()


def served_media_port(url: str) -> int:
    response = httpx.get(url + DOCUMENT, timeout=10)
    assert response.status_code == 200
    endpoint = media_endpoint(decode(response.content, ServerKeyDocument))
    assert endpoint is not None, "the key document lists no QUIC endpoint"
    return endpoint.port


def test_node_runs_on_the_pod_layout_and_follows_the_secret(tmp_path: Path) -> None:
    domain = configmap(TARGET, "sealrelay-node-config")["data"]["domain"]
    first, first_id = keys_secret(domain)
    secrets, data = tmp_path / "secrets", tmp_path / "data"
    peer_roots = tmp_path / "peer-roots"
    kubelet_secret(secrets, {KEY_FILE: first}, "1")
    statement = make_statement(rootsig.generate(), domain, {"peer.example": [PEER_FP]}, 1, 1)
    kubelet_secret(peer_roots, {PEER_ROOTS_FILE: statement}, "1")
    run_init_container(secrets, peer_roots, data)
    assert (data / KEY_FILE).is_symlink()
    assert (data / PEER_ROOTS_FILE).read_bytes() == statement  # what the node serves
    text = configmap(TARGET, "sealrelay-node-config")["data"]["node.toml"]
    config = tmp_path / "node.toml"
    config.write_text(text.split("\n[peers.", 1)[0])
    with SentinelSet(tmp_path / "redis") as ha:
        env = {**pod_environment(ha.sentinels), "SEALRELAY_SHUTDOWN_TIMEOUT": "5"}
        assert env["SEALRELAY_UDP_LISTEN"]  # the pod opens its call media port
        env["SEALRELAY_UDP_LISTEN"] = "127.0.0.1:0"  # here: loopback, any free port
        with NodeProcess(data, domain=domain, config=config, env=env) as node:
            url = node.start()
            assert httpx.get(url + "/readyz", timeout=10).status_code == 200
            assert httpx.get(url + "/healthz", timeout=10).status_code == 200
            assert served_key_id(url) == first_id
            assert served_media_port(url) > 0  # a version 2 document: the UDP port is open

            # `kubectl exec ... sealrelay admin invite` with the pod's environment: the code
            # lands in the shared Redis, where the node finds it
            code = invite(data, "alice", env=pod_environment(ha.sentinels))
            home = tmp_path / "alice"
            run_cli(
                "client", "register", f"alice@{domain}", "--node", url, "--code", code,
                "--home", str(home),
                env={"SEALRELAY_PASSPHRASE": "pod layout test", "SEALRELAY_TIMEOUT": "60"},
            )  # fmt: skip
            assert not (data / "node.sqlite3").exists()

            second, second_id = keys_secret(domain)
            kubelet_secret(secrets, {KEY_FILE: second}, "2")
            deadline = time.monotonic() + RELOAD_TIMEOUT
            while served_key_id(url) != second_id:
                assert time.monotonic() < deadline, "the node kept the old keys"
                time.sleep(0.2)
            assert (data / KEY_FILE).read_bytes() == second

            started = time.monotonic()
            assert node.stop() == 0
            grace = one(TARGET, "Deployment", "sealrelay-node")["spec"]["template"]["spec"][
                "terminationGracePeriodSeconds"
            ]
            assert time.monotonic() - started < grace
