"""Kubernetes manifests the operator's tools print (pure functions, no cluster access).

    secret_manifest("sealrelay-server-keys", "sealrelay-agency-a", {"server-keys.json": b"..."})

returns a ``v1`` ``Secret`` as YAML text (type ``Opaque``, every file base64 under ``data``),
ready for ``kubectl apply -f -``. Names are checked against the Kubernetes rules
(RFC 1123 subdomain for the Secret, RFC 1123 label for the namespace, ``[-._a-zA-Z0-9]+``
for data keys) and written as double-quoted YAML strings, so nothing the operator types can
change the YAML's structure or type; a bad name raises :class:`~node.errors.ConfigError`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Final

from node.errors import ConfigError

APP_NAME: Final = "sealrelay"
SERVER_KEYS_SECRET: Final = "sealrelay-server-keys"  # noqa: S105 - a Secret name
SERVER_KEYS_COMPONENT: Final = "server-keys"
DOMAIN_ANNOTATION: Final = "sealrelay/domain"
MAX_NAME: Final = 253
MAX_LABEL: Final = 63

_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DATA_KEY: Final = re.compile(r"[-._a-zA-Z0-9]+")


def secret_manifest(
    name: str,
    namespace: str | None,
    files: Mapping[str, bytes],
    component: str = SERVER_KEYS_COMPONENT,
    domain: str | None = None,
) -> str:
    """A ``v1`` ``Secret`` named ``name`` (in ``namespace`` when given) holding ``files``,
    annotated ``sealrelay/domain: DOMAIN`` when ``domain`` is given."""
    lines = ["apiVersion: v1", "kind: Secret"]
    lines += _metadata(name, namespace, component, domain)
    lines += ["type: Opaque", "data:"]
    lines += _data(files)
    return "\n".join(lines) + "\n"


def _metadata(name: str, namespace: str | None, component: str, domain: str | None) -> list[str]:
    _check(name, _SUBDOMAIN, MAX_NAME, "Secret name")
    _check(component, _LABEL, MAX_LABEL, "component label")
    lines = ["metadata:", f'  name: "{name}"']
    if namespace is not None:
        _check(namespace, _LABEL, MAX_LABEL, "namespace")
        lines.append(f'  namespace: "{namespace}"')
    lines += [
        "  labels:",
        f'    app.kubernetes.io/name: "{APP_NAME}"',
        f'    app.kubernetes.io/component: "{component}"',
    ]
    if domain is not None:
        _check(domain, _SUBDOMAIN, MAX_NAME, "domain")
        lines += ["  annotations:", f'    {DOMAIN_ANNOTATION}: "{domain}"']
    return lines


def _data(files: Mapping[str, bytes]) -> list[str]:
    if not files:
        raise ConfigError("a Secret needs at least one file")
    lines = []
    for key in sorted(files):
        _check(key, _DATA_KEY, MAX_NAME, "Secret data key")
        if key in (".", ".."):
            raise ConfigError(f"invalid Secret data key {key!r}")
        lines.append(f'  "{key}": "{base64.b64encode(files[key]).decode("ascii")}"')
    return lines


def _check(value: str, pattern: re.Pattern[str], max_len: int, what: str) -> None:
    if len(value) > max_len or pattern.fullmatch(value) is None:
        raise ConfigError(f"invalid {what} {value!r} (see node.k8s)")
