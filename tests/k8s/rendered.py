"""Rendered manifests for the tests in this directory: ``kubectl kustomize`` of the base and
each overlay (cached per run), parsed, with small lookups over the objects."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
K8S_VERSION = "1.31.0"
OVERLAYS = ("agency-a", "agency-b")
PEER = {"agency-a": "agency-b", "agency-b": "agency-a"}
TARGETS = ("base", *(f"overlays/{o}" for o in OVERLAYS))
SECRET = "sealrelay-server-keys"  # noqa: S105 - a Secret name
KEYS_MOUNT = "/var/run/secrets/sealrelay"
PEER_ROOTS_SECRET = "sealrelay-peer-roots"  # noqa: S105 - a Secret name
PEER_ROOTS_MOUNT = "/var/run/sealrelay/peer-roots"

Doc = dict[str, Any]


def tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    assert path, f"{name} is missing: install the test extra (pip install -e '.[test]')"
    return path


@functools.cache
def render(target: str) -> str:
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@functools.cache
def parsed(target: str) -> tuple[Doc, ...]:
    return tuple(d for d in yaml.safe_load_all(render(target)) if d)


def docs(target: str) -> list[Doc]:
    """The rendered objects (shared between tests: copy before changing one)."""
    return list(parsed(target))


def one(target: str, kind: str, name: str) -> Doc:
    found = [d for d in docs(target) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def configmap(target: str, prefix: str) -> Doc:
    found = [
        d
        for d in docs(target)
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix + "-")
    ]
    assert len(found) == 1
    return found[0]


def node_toml(target: str) -> dict[str, Any]:
    return tomllib.loads(configmap(target, "sealrelay-node-config")["data"]["node.toml"])


def pods(target: str) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod template) for every Deployment and StatefulSet."""
    for d in docs(target):
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield d, d["spec"]["template"]


def node_container(target: str) -> Doc:
    (container,) = one(target, "Deployment", "sealrelay-node")["spec"]["template"]["spec"][
        "containers"
    ]
    return container


def matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def pod_labels(target: str, component: str) -> dict[str, str]:
    for _, template in pods(target):
        labels: dict[str, str] = template["metadata"]["labels"]
        if labels.get("app.kubernetes.io/component") == component:
            return labels
    raise AssertionError(f"no {component} pods")


def fingerprint_of(overlay: str) -> str:
    """Recomputed from the public key itself, never read from the file's fingerprint."""
    public = json.loads((K8S / "overlays" / overlay / "root.pub.json").read_text())["public"]
    return "sha256:" + hashlib.sha256(base64.b64decode(public, validate=True)).hexdigest()


def kubernetes_validate(path: Path) -> tuple[int, list[str]]:
    done = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()
