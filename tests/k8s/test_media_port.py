"""Call media over UDP in the Kubernetes manifests (issue 17, "Operations"; DESIGN section 9).

The node's signed key document lists one media port, the one the node bound
(``udp_listen``), on the host of its public URL (``trust.media``, ``node.keys``); nothing
translates it on the way. So one port number must agree everywhere: ``udp_listen`` in
``node.toml`` and in the pod's environment, the container's UDP port, the load-balanced
Service (port and target, no translation), the node NetworkPolicy (in from every source,
out to peer nodes' public addresses and to the other node pods) and the image's ``EXPOSE``
and default command.
docs/kubernetes.md ("Call media over UDP") says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_config
from sealrelay.cli import build_parser
from tests.k8s.rendered import (
    TARGETS,
    Doc,
    configmap,
    matches,
    node_container,
    node_toml,
    one,
    pod_labels,
)
from tests.k8s.test_manifests import containerfile, containerfile_instruction, policies

MEDIA_SERVICE = "sealrelay-media"


def udp_address(target: str, tmp_path: Path) -> tuple[str, int]:
    """``udp_listen`` of the rendered node.toml, as ``node.config`` reads it (alone)."""
    path = tmp_path / "node.toml"
    path.write_text(configmap(target, "sealrelay-node-config")["data"]["node.toml"])
    address = load_config(path, env={}).udp_address()
    assert address is not None, "node.toml sets no udp_listen: the node opens no UDP port"
    return address


def media_ports(container: Doc) -> list[Doc]:
    return [p for p in container["ports"] if p.get("protocol") == "UDP"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_node_listens_for_media_on_every_interface(target: str, tmp_path: Path) -> None:
    host, port = udp_address(target, tmp_path)
    assert host == node_toml(target)["listen_host"]  # every pod address, as the TCP listener
    assert 1024 <= port <= 65535  # bound by user 10001 with every capability dropped
    env = {e["name"]: e.get("value") for e in node_container(target)["env"]}
    assert env["SEALRELAY_UDP_LISTEN"] == f"{host}:{port}"
    # the environment overrides the file (node.config): the node reads this value
    loaded = load_config(
        None,
        env={"SEALRELAY_UDP_LISTEN": env["SEALRELAY_UDP_LISTEN"]},
        overrides={"domain": "example.org", "data_dir": str(tmp_path)},
    )
    assert loaded.udp_address() == (host, port)


@pytest.mark.parametrize("target", TARGETS)
def test_container_port_and_service_carry_the_listened_port(target: str, tmp_path: Path) -> None:
    _, port = udp_address(target, tmp_path)
    (media,) = media_ports(node_container(target))
    assert media == {"name": "media", "containerPort": port, "protocol": "UDP"}
    service = one(target, "Service", MEDIA_SERVICE)["spec"]
    assert matches({"matchLabels": service["selector"]}, pod_labels(target, "node"))
    assert service["type"] == "LoadBalancer"
    assert service["externalTrafficPolicy"] == "Local"
    assert "sessionAffinity" not in service  # one agency NAT address would pin to one pod
    (exposed,) = service["ports"]
    # The key document lists the bound port: the outside port must be that same number.
    assert exposed == {"name": "media", "port": port, "targetPort": "media", "protocol": "UDP"}
    # and the HTTP Service (behind the Ingress) carries no UDP
    http = one(target, "Service", "sealrelay-node")["spec"]
    assert {p["protocol"] for p in http["ports"]} == {"TCP"}


@pytest.mark.parametrize("target", TARGETS)
def test_network_policy_admits_media_from_everywhere_and_to_peers(
    target: str, tmp_path: Path
) -> None:
    _, port = udp_address(target, tmp_path)
    spec = policies(target)["sealrelay-node"]
    udp_in = [r for r in spec["ingress"] if any(p["protocol"] == "UDP" for p in r["ports"])]
    assert udp_in == [{"ports": [{"protocol": "UDP", "port": port}]}]  # no `from`: any source
    tcp_in = [r for r in spec["ingress"] if r not in udp_in]
    assert all(p["protocol"] == "TCP" for r in tcp_in for p in r["ports"])
    assert all("from" in r for r in tcp_in)  # HTTP stays behind the ingress controller
    udp_out = [
        r for r in spec["egress"] if any(p == {"protocol": "UDP", "port": port} for p in r["ports"])
    ]
    replicas, peers = udp_out
    # the other node pods, at the pod IP each announces (meeting links between replicas;
    # pod IPs are in the private ranges the rule for peers excludes)
    (pods,) = replicas["to"]
    assert set(pods) == {"podSelector"}  # this namespace's node pods, and only them
    assert matches(pods["podSelector"], pod_labels(target, "node"))
    assert not matches(pods["podSelector"], pod_labels(target, "redis"))
    assert replicas["ports"] == [{"protocol": "UDP", "port": port}]
    (block,) = peers["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(block["ipBlock"]["except"])


def test_image_exposes_and_listens_on_the_media_port(tmp_path: Path) -> None:
    _, port = udp_address("base", tmp_path)
    exposed = " ".join(args for instr, args in containerfile() if instr == "EXPOSE").split()
    assert f"{port}/udp" in exposed
    entrypoint = containerfile_instruction("ENTRYPOINT")
    cmd = containerfile_instruction("CMD")
    parsed = build_parser().parse_args([*entrypoint[1:], *cmd])
    assert parsed.udp_listen == f"0.0.0.0:{port}"
