"""The Kubernetes manifests, offline: every kustomization renders with ``kubectl kustomize``
and passes ``kubernetes-validate --strict`` for one pinned Kubernetes version, and the
rendered objects say what docs/kubernetes.md promises (pinned peers, probes, drain, pod
security, network policies, Redis with Sentinel). Nothing here talks to a cluster."""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.app import FEDERATION_MAX_BODY, FEDERATION_PREFIX
from node.config import Config, load_config, parse_sentinels
from sealrelay.cli import build_parser
from tests.k8s.rendered import (
    K8S,
    KEYS_MOUNT,
    OVERLAYS,
    PEER,
    PEER_ROOTS_MOUNT,
    PEER_ROOTS_SECRET,
    ROOT,
    SECRET,
    TARGETS,
    Doc,
    configmap,
    docs,
    fingerprint_of,
    kubernetes_validate,
    matches,
    node_container,
    node_toml,
    one,
    pod_labels,
    pods,
    render,
)

# --- rendering and schema validation ---------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(tmp_path: Path, target: str) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(render(target))
    status, lines = kubernetes_validate(path)
    assert status == 0, "\n".join(lines)
    assert not [line for line in lines if not line.startswith("INFO ")], "\n".join(lines)
    passed = [line for line in lines if " passed for resource " in line]
    assert len(passed) == len(docs(target)) >= 17


def test_strict_validation_catches_a_bad_field(tmp_path: Path) -> None:
    """The check above can fail: an unknown field in the pod spec is refused."""
    deployment = copy.deepcopy(one("overlays/agency-a", "Deployment", "sealrelay-node"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    status, lines = kubernetes_validate(path)
    assert status != 0
    assert any(line.startswith("ERROR ") for line in lines)


@pytest.mark.parametrize("target", TARGETS)
def test_every_part_is_rendered_and_no_secret_is(target: str) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs(target)}
    for part in [
        ("Deployment", "sealrelay-node"),
        ("Service", "sealrelay-node"),
        ("Service", "sealrelay-media"),
        ("Ingress", "sealrelay-node"),
        ("Ingress", "sealrelay-federation"),
        ("PodDisruptionBudget", "sealrelay-node"),
        ("HorizontalPodAutoscaler", "sealrelay-node"),
        ("NetworkPolicy", "default-deny"),
        ("NetworkPolicy", "sealrelay-node"),
        ("NetworkPolicy", "redis"),
        ("StatefulSet", "redis"),
        ("StatefulSet", "redis-sentinel"),
        ("Service", "redis"),
        ("Service", "redis-sentinel"),
    ]:
        assert part in kinds
    assert not [d for d in docs(target) if d["kind"] == "Secret"]
    volumes = one(target, "Deployment", "sealrelay-node")["spec"]["template"]["spec"]["volumes"]
    secrets = [v["secret"] for v in volumes if "secret" in v]
    assert secrets == [
        {
            "secretName": SECRET,
            "optional": False,
            "defaultMode": 0o440,
            "items": [{"key": "server-keys.json", "path": "server-keys.json"}],
        },
        {
            "secretName": PEER_ROOTS_SECRET,
            "optional": True,
            "defaultMode": 0o440,
            "items": [{"key": "peer-roots.bin", "path": "peer-roots.bin"}],
        },
    ]


# --- the two agencies -------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_pins_the_other_agencys_root_key(overlay: str) -> None:
    target, peer = f"overlays/{overlay}", PEER[overlay]
    config = node_toml(target)
    assert config["domain"] == f"{overlay}.example"
    assert config["public_url"] == f"https://relay.{overlay}.example"
    assert list(config["peers"]) == [f"{peer}.example"]
    entry = config["peers"][f"{peer}.example"]
    assert entry["trust"] == "pinned"
    assert entry["pins"] == [fingerprint_of(peer)]
    assert fingerprint_of(overlay) not in entry["pins"]
    assert entry["endpoints"] == [f"https://relay.{peer}.example"]
    assert entry["allow"] is True
    assert entry["min_suite"] == "cnsa2"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_domain_host_and_namespace_agree(overlay: str) -> None:
    target, domain = f"overlays/{overlay}", f"{overlay}.example"
    assert configmap(target, "sealrelay-node-config")["data"]["domain"] == domain
    namespaces = {d["metadata"].get("namespace") for d in docs(target) if d["kind"] != "Namespace"}
    assert namespaces == {f"sealrelay-{overlay}"}
    (namespace,) = [d for d in docs(target) if d["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == f"sealrelay-{overlay}"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name in INGRESSES:
        spec = one(target, "Ingress", name)["spec"]
        assert [rule["host"] for rule in spec["rules"]] == [f"relay.{domain}"], name
        assert [tls["hosts"] for tls in spec["tls"]] == [[f"relay.{domain}"]], name
        assert spec["tls"][0]["secretName"] == f"relay-{overlay}-example-tls", name


def test_root_public_key_files() -> None:
    publics = set()
    for overlay in OVERLAYS:
        directory = K8S / "overlays" / overlay
        root = json.loads((directory / "root.pub.json").read_text())
        assert set(root) == {"algorithm", "public", "fingerprint"}
        assert root["algorithm"] == "slh-dsa-sha2-256s"
        public = base64.b64decode(root["public"], validate=True)
        assert len(public) == 64  # SLH-DSA-SHA2-256s public key (FIPS 205, n = 32)
        assert root["fingerprint"] == fingerprint_of(overlay)
        publics.add(public)
    assert len(publics) == len(OVERLAYS)


def test_no_secret_key_material_is_committed() -> None:
    for path in K8S.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert 'server-keys.json":' not in text, path
            if path.suffix == ".json":
                assert set(json.loads(text)) == {"algorithm", "public", "fingerprint"}, path


@pytest.mark.parametrize("target", TARGETS)
def test_node_toml_loads_through_node_config(tmp_path: Path, target: str) -> None:
    """The rendered node.toml is a configuration the node accepts, as rendered."""
    path = tmp_path / "node.toml"
    path.write_text(configmap(target, "sealrelay-node-config")["data"]["node.toml"])
    loaded = load_config(path, env={})
    assert loaded.domain == node_toml(target)["domain"]
    assert loaded.store == "redis"
    assert loaded.durability == "replicated"
    assert loaded.listen_port == 7480
    assert parse_sentinels(loaded.redis_sentinels)[0] == ("redis-sentinel-0.redis-sentinel", 26379)
    policies = loaded.peer_policies()
    if target == "base":
        assert policies == {}
        return
    overlay = target.removeprefix("overlays/")
    (policy,) = policies.values()
    assert policy.domain == f"{PEER[overlay]}.example"
    assert policy.trust == "pinned"
    assert policy.pins == (fingerprint_of(PEER[overlay]),)
    assert policy.min_suite == "cnsa2"


# --- the node pods ----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_runs_restricted(target: str) -> None:
    seen = 0
    for _, template in pods(target):
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] > 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["runAsNonRoot"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert set(container["resources"]) == {"requests", "limits"}
            seen += 1
    assert seen == 4  # node, its init container, redis, sentinel


@pytest.mark.parametrize("target", TARGETS)
def test_node_probes_and_drain(target: str) -> None:
    deployment = one(target, "Deployment", "sealrelay-node")
    spec, container = deployment["spec"]["template"]["spec"], node_container(target)
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    media = int(node_toml(target)["udp_listen"].rpartition(":")[2])
    assert port == {"http": node_toml(target)["listen_port"], "media": media}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    shutdown = node_toml(target).get("shutdown_timeout", Config.shutdown_timeout)
    assert spec["terminationGracePeriodSeconds"] > int(command[1]) + shutdown
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in deployment["spec"]  # the HorizontalPodAutoscaler owns it


@pytest.mark.parametrize("target", TARGETS)
def test_node_command_line_matches_the_image_and_the_config(target: str) -> None:
    container, config = node_container(target), node_toml(target)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    entrypoint = containerfile_instruction("ENTRYPOINT")
    config_path = f"{mounts['config']['mountPath']}/node.toml"
    assert entrypoint == ["sealrelay", "node", "serve", "--config", config_path]
    domain = configmap(target, "sealrelay-node-config")["data"]["domain"]
    assert domain == config["domain"]
    args = [a.replace("$(SEALRELAY_DOMAIN)", domain) for a in container["args"]]
    parsed = build_parser().parse_args([*entrypoint[1:], *args])
    assert parsed.domain == config["domain"]
    assert parsed.data == config["data_dir"] == mounts["data"]["mountPath"]
    assert parsed.listen == f"{config['listen_host']}:{config['listen_port']}"
    keys = mounts["server-keys"]
    assert keys == {"name": "server-keys", "mountPath": KEYS_MOUNT, "readOnly": True}
    assert mounts["peer-roots"] == {
        "name": "peer-roots",
        "mountPath": PEER_ROOTS_MOUNT,
        "readOnly": True,
    }
    # DATA_DIR/server-keys.json and peer-roots.bin link to the Secrets' files (no subPath:
    # updates reach the pod)
    (init,) = one(target, "Deployment", "sealrelay-node")["spec"]["template"]["spec"][
        "initContainers"
    ]
    assert init["image"] == container["image"]
    keys_file, roots_file = f"{KEYS_MOUNT}/server-keys.json", f"{PEER_ROOTS_MOUNT}/peer-roots.bin"
    assert init["command"] == ["ln", "-sf", keys_file, roots_file, f"{config['data_dir']}/"]
    assert init["volumeMounts"] == [{"name": "data", "mountPath": config["data_dir"]}]
    volumes = {v["name"]: v for v in deployment_volumes(target)}
    assert "emptyDir" in volumes["data"]
    assert "emptyDir" in volumes[next(n for n, m in mounts.items() if m["mountPath"] == "/tmp")]
    assert volumes["config"]["configMap"]["name"].startswith("sealrelay-node-config-")
    env = {e["name"]: e for e in container["env"]}
    ref = env.pop("SEALRELAY_DOMAIN")["valueFrom"]["configMapKeyRef"]
    assert ref == {"name": volumes["config"]["configMap"]["name"], "key": "domain"}
    assert "valueFrom" in env.pop(INTERNAL_ADDRESS)  # the pod's own: see the test below
    # the rest repeat node.toml (for `admin invite` in the pod): they must say the same
    assert env, "the store settings are not in the environment"
    assert all(set(entry) == {"name", "value"} for entry in env.values()), env
    for name, entry in env.items():
        key = name.removeprefix("SEALRELAY_").lower()
        assert name.startswith("SEALRELAY_")
        assert entry["value"] == str(config[key]), name
    assert container["image"] == "sealrelay-node:0.1.0"


INTERNAL_ADDRESS = "SEALRELAY_MEDIA_INTERNAL_ADDRESS"


@pytest.mark.parametrize("target", TARGETS)
def test_media_internal_address_is_the_pod_ip(target: str, tmp_path: Path) -> None:
    """Each replica announces where the others reach its media port (meeting rooms placed
    on one replica): its own pod IP, from the downward API, never a value shared by every
    pod; with it the node announces that IP (udp_listen itself is a wildcard)."""
    (entry,) = [e for e in node_container(target)["env"] if e["name"] == INTERNAL_ADDRESS]
    assert entry == {
        "name": INTERNAL_ADDRESS,
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    }
    assert "media_internal_address" not in node_toml(target)
    path = tmp_path / "node.toml"
    path.write_text(configmap(target, "sealrelay-node-config")["data"]["node.toml"])
    alone = load_config(path, env={})
    assert alone.media_internal_host() is None  # a wildcard: no placement without the pod IP
    for pod_ip in ("10.244.3.17", "fd00:10:244::3"):
        loaded = load_config(path, env={INTERNAL_ADDRESS: pod_ip})
        assert loaded.media_internal_host() == pod_ip
        assert loaded.udp_address() == alone.udp_address()


def deployment_volumes(target: str) -> list[Doc]:
    volumes: list[Doc] = one(target, "Deployment", "sealrelay-node")["spec"]["template"]["spec"][
        "volumes"
    ]
    return volumes


@pytest.mark.parametrize("target", TARGETS)
def test_anti_affinity_spreads_every_workload(target: str) -> None:
    for workload, template in pods(target):
        terms = template["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        term = terms[0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert matches(term["labelSelector"], template["metadata"]["labels"])
        assert matches(workload["spec"]["selector"], template["metadata"]["labels"])


@pytest.mark.parametrize("target", TARGETS)
def test_disruption_budgets_and_autoscaler(target: str) -> None:
    budgets = {
        d["metadata"]["name"]: d["spec"] for d in docs(target) if d["kind"] == "PodDisruptionBudget"
    }
    assert budgets["sealrelay-node"]["maxUnavailable"] == 1
    assert matches(budgets["sealrelay-node"]["selector"], pod_labels(target, "node"))
    assert budgets["redis"]["maxUnavailable"] == 1
    assert matches(budgets["redis"]["selector"], pod_labels(target, "redis"))
    assert budgets["redis-sentinel"]["minAvailable"] == 2
    assert matches(budgets["redis-sentinel"]["selector"], pod_labels(target, "sentinel"))
    hpa = one(target, "HorizontalPodAutoscaler", "sealrelay-node")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sealrelay-node",
    }
    assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in node_container(target)["resources"]["requests"]


INGRESSES = ("sealrelay-node", "sealrelay-federation")
CLIENT_PATHS = {
    "/v1/client": "Exact",
    "/v1/sealed": "Exact",  # the anonymous connection of sealed sending (issue 20)
    "/v1/blobs": "Prefix",
    "/v1/remote-blobs": "Prefix",  # a peer domain's blob, fetched by the home node
    # clients fetch the key document to enroll; peers only when their copy is stale
    "/.well-known/sealrelay/server": "Exact",
}
FEDERATION_PATHS = {"/federation/": "Prefix"}
LIMITS = ("limit-rps", "limit-connections")
ANNOTATION = "nginx.ingress.kubernetes.io/"


def ingress_paths(target: str, name: str) -> dict[str, Doc]:
    (rule,) = one(target, "Ingress", name)["spec"]["rules"]
    return {p["path"]: p for p in rule["http"]["paths"]}


def annotations(target: str, name: str) -> dict[str, str]:
    found: dict[str, str] = one(target, "Ingress", name)["metadata"]["annotations"]
    return {k.removeprefix(ANNOTATION): v for k, v in found.items() if k.startswith(ANNOTATION)}


@pytest.mark.parametrize("target", TARGETS)
def test_service_and_ingresses_route_only_public_paths(target: str) -> None:
    service = one(target, "Service", "sealrelay-node")["spec"]
    assert matches({"matchLabels": service["selector"]}, pod_labels(target, "node"))
    (port,) = service["ports"]
    assert port["targetPort"] == "http"
    routed = {
        name: {path: p["pathType"] for path, p in ingress_paths(target, name).items()}
        for name in INGRESSES
    }
    assert routed == {"sealrelay-node": CLIENT_PATHS, "sealrelay-federation": FEDERATION_PATHS}
    for name in INGRESSES:
        for path in ingress_paths(target, name).values():
            backend = path["backend"]["service"]
            assert backend == {"name": "sealrelay-node", "port": {"name": port["name"]}}


@pytest.mark.parametrize("target", TARGETS)
def test_federation_is_not_under_the_client_limits(target: str) -> None:
    """Every route the node serves to peers is on the federation Ingress only, whose
    per-address limits are higher than the clients' and whose body size admits a full
    transaction; the client Ingress routes nothing under /federation/."""
    assert set(FEDERATION_PATHS) == {FEDERATION_PREFIX}
    assert not [p for p in ingress_paths(target, "sealrelay-node") if p.startswith("/federation")]
    client, federation = (
        annotations(target, "sealrelay-node"),
        annotations(target, "sealrelay-federation"),
    )
    for limit in LIMITS:
        assert int(federation[limit]) > int(client[limit]), limit
    size = federation["proxy-body-size"]
    assert size.endswith("m")
    assert int(size[:-1]) << 20 >= FEDERATION_MAX_BODY
    assert "whitelist-source-range" not in client


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_admits_only_its_peers_sources_to_federation(overlay: str) -> None:
    target = f"overlays/{overlay}"
    ranges = annotations(target, "sealrelay-federation")["whitelist-source-range"].split(",")
    networks = [ipaddress.ip_network(r.strip()) for r in ranges]
    assert networks
    assert all(n.prefixlen > 0 for n in networks)  # never "everyone"
    assert "whitelist-source-range" not in annotations("base", "sealrelay-federation")


# --- network policies -------------------------------------------------------------------


def policies(target: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d["spec"] for d in docs(target) if d["kind"] == "NetworkPolicy"}


def ports_of(rules: list[Doc]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for rule in rules for p in rule["ports"]}


@pytest.mark.parametrize("target", TARGETS)
def test_default_deny_and_every_pod_has_its_policy(target: str) -> None:
    specs = policies(target)
    assert specs["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for _, template in pods(target):
        labels = template["metadata"]["labels"]
        own = [
            n for n, s in specs.items() if n != "default-deny" and matches(s["podSelector"], labels)
        ]
        assert len(own) == 1, labels


@pytest.mark.parametrize("target", TARGETS)
def test_node_policy(target: str) -> None:
    spec = policies(target)["sealrelay-node"]
    assert matches(spec["podSelector"], pod_labels(target, "node"))
    ingress, media = spec["ingress"]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert ports_of([ingress]) == {("TCP", node_toml(target)["listen_port"])}
    udp = int(node_toml(target)["udp_listen"].rpartition(":")[2])
    assert media == {"ports": [{"protocol": "UDP", "port": udp}]}  # every source, UDP only
    egress = spec["egress"]
    assert ports_of(egress) == {
        ("TCP", 26379),
        ("TCP", 6379),
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 443),
        ("UDP", udp),
    }
    by_port = {p["port"]: rule for rule in egress for p in rule["ports"]}
    (sentinels,) = by_port[26379]["to"]
    assert matches(sentinels["podSelector"], pod_labels(target, "sentinel"))
    assert not matches(sentinels["podSelector"], pod_labels(target, "redis"))
    (redis,) = by_port[6379]["to"]
    assert matches(redis["podSelector"], pod_labels(target, "redis"))
    (dns,) = by_port[53]["to"]
    assert dns["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    (https,) = by_port[443]["to"]
    assert by_port[udp] is by_port[443]  # peer nodes' QUIC: the same public addresses
    assert https["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "169.254.0.0/16"} <= set(https["ipBlock"]["except"])


@pytest.mark.parametrize("target", TARGETS)
def test_redis_policy(target: str) -> None:
    spec = policies(target)["redis"]
    node, redis, sentinel = (pod_labels(target, c) for c in ("node", "redis", "sentinel"))
    assert matches(spec["podSelector"], redis)
    assert matches(spec["podSelector"], sentinel)
    assert not matches(spec["podSelector"], node)
    (ingress,) = spec["ingress"]
    assert ports_of([ingress]) == {("TCP", 6379), ("TCP", 26379)}
    (source,) = ingress["from"]
    assert set(source) == {"podSelector"}  # this namespace only
    assert all(matches(source["podSelector"], labels) for labels in (node, redis, sentinel))
    assert not matches(source["podSelector"], {"app.kubernetes.io/name": "sealrelay"})
    assert ports_of(spec["egress"]) == {("TCP", 6379), ("TCP", 26379), ("UDP", 53), ("TCP", 53)}


# --- Redis with Sentinel ----------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_redis_and_sentinel_topology(target: str) -> None:
    redis = one(target, "StatefulSet", "redis")["spec"]
    sentinel = one(target, "StatefulSet", "redis-sentinel")["spec"]
    assert redis["replicas"] >= 3  # one primary and at least two replicas
    assert sentinel["replicas"] == 3
    for name, spec in (("redis", redis), ("redis-sentinel", sentinel)):
        assert spec["serviceName"] == name
        service = one(target, "Service", name)["spec"]
        assert service["clusterIP"] == "None"
        assert service["publishNotReadyAddresses"] is True
        assert matches({"matchLabels": service["selector"]}, spec["template"]["metadata"]["labels"])
    config = node_toml(target)
    expected = [f"redis-sentinel-{i}.redis-sentinel:26379" for i in range(sentinel["replicas"])]
    assert config["redis_sentinels"].split(",") == expected
    script = configmap(target, "redis-config")["data"]["start-sentinel.sh"]
    assert f"sentinel monitor {config['redis_master']} $MASTER 6379 2" in script
    assert redis["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


# --- the Containerfile ------------------------------------------------------------------


def containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = (ROOT / "Containerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def containerfile_instruction(name: str) -> Any:
    (value,) = [args for instr, args in containerfile() if instr == name]
    return json.loads(value)


def test_containerfile() -> None:
    steps = containerfile()
    stages = [i for i, (instr, _) in enumerate(steps) if instr == "FROM"]
    assert len(stages) >= 2
    assert all(steps[i][1].split()[0] == "python:3.11-slim" for i in stages)
    final = steps[stages[-1] :]
    users = [args for instr, args in final if instr == "USER"]
    assert users
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root")
    pod = one("overlays/agency-a", "Deployment", "sealrelay-node")["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"]
    assert not [args for instr, args in steps if instr == "ADD"]
    copies = [args.split() for instr, args in steps if instr == "COPY"]
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for source in sources:
            assert source not in (".", "./", "*"), "the whole build context is copied"
            assert "key" not in source.lower(), source
            assert not source.endswith(".json"), source
            if not any(a.startswith("--from=") for a in args):
                assert (ROOT / source).exists(), source
    assert [args for instr, args in final if instr == "EXPOSE"] == ["7480 7481/udp"]
    runs = " ".join(args for instr, args in steps if instr == "RUN")
    assert "pip install ." in runs
    assert containerfile_instruction("ENTRYPOINT")[:3] == ["sealrelay", "node", "serve"]


# --- the Redis scripts against real Redis ----------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_files(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    for name, text in configmap("overlays/agency-a", "redis-config")["data"].items():
        (config / name).write_text(text)
    return config


def fake_tools(tmp_path: Path, host: str, sentinel_answer: str | None) -> Path:
    """``hostname``, ``redis-cli`` (answering like a Sentinel, or failing like an unreachable
    one) and ``redis-server``/``redis-sentinel`` that print the file they were given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = "exit 1" if sentinel_answer is None else f"printf '%s\\n6379\\n' {sentinel_answer}"
    scripts = {
        "hostname": f"echo {host}",
        "redis-cli": answer,
        "redis-server": 'cat "$1"',
        "redis-sentinel": 'cat "$1"',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run_script(tmp_path: Path, script: str, host: str, answer: str | None) -> str:
    config, run = redis_files(tmp_path), tmp_path / "run"
    run.mkdir()
    bin_dir = fake_tools(tmp_path, host, answer)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "REDIS_RUN_DIR": str(run),
        "REDIS_CONFIG_DIR": str(config),
    }
    done = subprocess.run(
        ["sh", str(config / script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("host", "answer", "replicaof"),
    [
        ("redis-0", None, None),  # first start, no Sentinel yet: redis-0 is the primary
        ("redis-2", None, "redis-0.redis"),
        ("redis-0", "redis-1.redis", "redis-1.redis"),  # after a failover redis-0 follows
        ("redis-1", "redis-1.redis", None),
    ],
)
def test_start_redis_follows_the_sentinels(
    tmp_path: Path, host: str, answer: str | None, replicaof: str | None
) -> None:
    conf = run_script(tmp_path, "start-redis.sh", host, answer).splitlines()
    assert f"replica-announce-ip {host}.redis" in conf
    assert [line for line in conf if line.startswith("replicaof")] == (
        [f"replicaof {replicaof} 6379"] if replicaof else []
    )


@pytest.mark.parametrize(
    ("answer", "master"), [(None, "redis-0.redis"), ("redis-2.redis", "redis-2.redis")]
)
def test_start_sentinel_monitors_the_current_primary(
    tmp_path: Path, answer: str | None, master: str
) -> None:
    conf = run_script(tmp_path, "start-sentinel.sh", "redis-sentinel-1", answer).splitlines()
    assert f"sentinel monitor sealrelay {master} 6379 2" in conf
    assert "sentinel announce-ip redis-sentinel-1.redis-sentinel" in conf


def wait_for_ping(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        assert process.poll() is None, "redis exited"
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        if done.stdout.strip() == "PONG":
            return
        subprocess.run(["sleep", "0.05"], check=True)
    raise AssertionError("redis did not answer")


def redis_cli(port: int, *args: str) -> list[str]:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--raw", *args],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


def test_real_redis_and_sentinel_accept_the_rendered_configuration(tmp_path: Path) -> None:
    """redis.conf and the Sentinel file start-sentinel.sh writes are accepted by the
    redis-server on PATH (bound to loopback on free ports for the test)."""
    redis_conf = redis_files(tmp_path) / "redis.conf"
    mounts = one("overlays/agency-a", "StatefulSet", "redis")["spec"]["template"]["spec"][
        "containers"
    ][0]["volumeMounts"]
    data_dir = next(m["mountPath"] for m in mounts if m["name"] == "data")
    assert f"dir {data_dir}\n" in redis_conf.read_text()  # the PersistentVolume
    redis_conf.write_text(redis_conf.read_text().replace(f"dir {data_dir}\n", ""))
    sentinel_conf = tmp_path / "sentinel.conf"
    (tmp_path / "s").mkdir()
    text = run_script(tmp_path / "s", "start-sentinel.sh", "localhost", "127.0.0.1")
    redis_port, sentinel_port = free_port(), free_port()
    sentinel_conf.write_text(text.replace(" 6379 2", f" {redis_port} 2"))
    local = ["--bind", "127.0.0.1", "--dir", str(tmp_path)]
    commands = [
        ["redis-server", str(redis_conf), "--port", str(redis_port), *local],
        ["redis-server", str(sentinel_conf), "--sentinel", "--port", str(sentinel_port), *local],
    ]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes += [subprocess.Popen(command, stdout=subprocess.DEVNULL) for command in commands]
        wait_for_ping(redis_port, processes[0])
        wait_for_ping(sentinel_port, processes[1])
        assert redis_cli(redis_port, "CONFIG", "GET", "maxmemory-policy")[1] == "noeviction"
        assert redis_cli(redis_port, "CONFIG", "GET", "appendonly")[1] == "yes"
        assert redis_cli(redis_port, "CONFIG", "GET", "min-replicas-to-write")[1] == "1"
        master = redis_cli(sentinel_port, "SENTINEL", "get-master-addr-by-name", "sealrelay")
        assert master == ["127.0.0.1", str(redis_port)]
        info = redis_cli(sentinel_port, "SENTINEL", "master", "sealrelay")
        assert info[info.index("quorum") + 1] == "2"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
