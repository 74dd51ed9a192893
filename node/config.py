"""The node's configuration: defaults, then a TOML file, then ``SEALRELAY_<KEY>`` variables.

Every key of :class:`Config` may appear at the top level of the TOML file and as an
environment variable named ``SEALRELAY_`` plus the key in upper case (for example
``SEALRELAY_MAX_BLOB_BYTES=1048576``); the command line (``--domain``, ``--listen``,
``--udp-listen``, ``--data``) overrides both. Precedence, lowest first: defaults, the file,
the environment, the command line. ``domain`` and ``data_dir`` have no default: each must
come from one of the three (else ``config.missing``). Durations are seconds, sizes bytes.

======================================  ===========  ===============================================
key                                     default      meaning
======================================  ===========  ===============================================
domain                                  (required)   the domain this node serves (``name@domain``)
listen_host                             127.0.0.1    address to bind
listen_port                             7480         port to bind (0: any free port, printed on
                                                     stdout)
udp_listen                              ""           ``HOST:PORT`` of the UDP socket for call media
                                                     over QUIC (port 0: any free port); empty: no
                                                     QUIC endpoint, and no UDP socket
media_internal_address                  ""           store=redis with udp_listen: the literal IP
                                                     the other replicas reach this one's media
                                                     port at (meetings across replicas); empty:
                                                     udp_listen's host if it is a literal,
                                                     non-wildcard IP, else none (no placement)
data_dir                                (required)   keys and the SQLite store live here
suite                                   cnsa2        cipher suite of the domain: cnsa2 or xwing
store                                   sqlite       storage backend: sqlite, memory or redis
redis_url                               ""           store=redis: ``redis://HOST:PORT/DB`` (or
                                                     ``rediss://``) of the shared Redis
redis_sentinels                         ""           store=redis through Sentinel: comma-separated
                                                     ``HOST:PORT`` list (then redis_url is unused)
redis_master                            sealrelay    the Sentinel service name of the primary
durability                              primary      store=redis: ``primary`` (acknowledged by the
                                                     primary) or ``replicated`` (``WAIT`` for one
                                                     replica, else the write fails)
client_websocket                        direct       who serves ``/v1/client``: direct (the node's
                                                     own WebSocket shell, ``node.gateway``) or
                                                     hypercorn (through ASGI, as other routes)
public_url                              ""           endpoint advertised in the key document
                                                     (default ``http://HOST:PORT`` as bound)
max_frame_bytes                         1114112      largest WebSocket frame read from a client
max_envelope_bytes                      262144       largest envelope body (at most 1 MiB, the wire
                                                     bound)
max_blob_bytes                          67108864     largest blob upload
max_ttl                                 2592000      longest envelope/blob life (30 days)
default_ttl                             604800       envelope life when a Send asks for 0 (7 days)
rate_account_per_s                      200          requests per second per account (sustained)
rate_account_burst                      400          burst per account
rate_ip_per_s                           400          requests per second per client address
rate_ip_burst                           800          burst per client address
introductions_per_minute                10           Introduce frames per account per minute
introductions_per_recipient_per_minute  30           Introduce frames to one account per minute
batched_introductions_per_minute        1024         introductions inside IntroduceMany uploads
                                                     per account per minute (each upload also
                                                     counts once in introductions_per_minute)
max_connections_per_ip                  1000         WebSocket connections per client address
rate_sealed_ip_per_s                    400          anonymous connections (``/v1/sealed``):
                                                     requests per second per client address
rate_sealed_ip_burst                    800          burst per client address (anonymous)
rate_sealed_connection_per_s            200          requests per second per anonymous connection
rate_sealed_connection_burst            400          burst per anonymous connection
rate_sealed_mailbox_per_s               50           sealed envelopes per second to one mailbox,
                                                     over anonymous connections (valid token only)
rate_sealed_mailbox_burst               500          burst per mailbox (anonymous)
max_sealed_connections_per_ip           1000         anonymous WebSocket connections per client
                                                     address (counted apart from the others)
sealed_idle_timeout                     120          seconds an anonymous connection may send
                                                     nothing before it is closed (1000)
debug_connections                       false        serve ``GET /v1/debug/connections`` (the
                                                     in-memory connection table, as JSON) to
                                                     loopback clients only; for tests and
                                                     debugging, never in production
flood_close_after                       100          refused frames (rate-limited or unreadable)
                                                     within 10 s before closing (1008)
sweep_interval                          60           seconds between sweeps of expired data
certificate_lifetime                    604800       sender certificate life (7 days)
document_lifetime                       604800       key document ``valid_until`` (at most 7 days)
shutdown_timeout                        10           seconds to drain connections and writes on stop
auth_timeout                            10           seconds a WebSocket may stay unauthenticated
                                                     (then ``auth.timeout`` and close 1008)
log_level                               info         debug, info, warning or error
open_federation                         false        accept domains without a ``[peers]`` table,
                                                     on trust-on-first-use (default: refuse them)
federation_backoff_cap                  300          longest wait between retries to a peer (s)
federation_in_flight                    4            transactions sent to one peer at once (while
                                                     a backlog lasts; one while it fails)
peers                                   (none)       TOML only: one ``[peers."DOMAIN"]`` table per
                                                     federated domain (``federation.policy``)
======================================  ===========  ===============================================

Anything invalid raises :class:`~node.errors.ConfigError` naming the key; the command exits
with status 2.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from federation.policy import PeerPolicy, parse_peers
from node.errors import CONFIG_FILE, CONFIG_MISSING, ConfigError
from trust.limits import MAX_BLOB_BYTES, MAX_CLIENT_FRAME
from trust.limits import MAX_ENVELOPE_BODY as WIRE_MAX_BODY

ENV_PREFIX: Final = "SEALRELAY_"
MAX_DOCUMENT_LIFETIME: Final = 7 * 86400
SUITES: Final = ("cnsa2", "xwing")
STORES: Final = ("sqlite", "memory", "redis")
DURABILITIES: Final = ("primary", "replicated")
REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
CLIENT_WEBSOCKETS: Final = ("direct", "hypercorn")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
CONFIG_DOCS: Final = "docs/operations.md, Configuration"
"""Where a configuration error sends the operator: the table of every key."""


@dataclass(frozen=True)
class Config:
    """See the module docstring for every key."""

    domain: str = ""
    listen_host: str = "127.0.0.1"
    listen_port: int = 7480
    udp_listen: str = ""
    media_internal_address: str = ""
    data_dir: str = ""
    suite: str = "cnsa2"
    store: str = "sqlite"
    redis_url: str = ""
    redis_sentinels: str = ""
    redis_master: str = "sealrelay"
    durability: str = "primary"
    client_websocket: str = "direct"
    public_url: str = ""
    max_frame_bytes: int = MAX_CLIENT_FRAME
    max_envelope_bytes: int = 256 * 1024
    max_blob_bytes: int = MAX_BLOB_BYTES
    max_ttl: int = 30 * 86400
    default_ttl: int = 7 * 86400
    rate_account_per_s: float = 200.0
    rate_account_burst: int = 400
    rate_ip_per_s: float = 400.0
    rate_ip_burst: int = 800
    introductions_per_minute: int = 10
    introductions_per_recipient_per_minute: int = 30
    batched_introductions_per_minute: int = 1024
    max_connections_per_ip: int = 1000
    rate_sealed_ip_per_s: float = 400.0
    rate_sealed_ip_burst: int = 800
    rate_sealed_connection_per_s: float = 200.0
    rate_sealed_connection_burst: int = 400
    rate_sealed_mailbox_per_s: float = 50.0
    rate_sealed_mailbox_burst: int = 500
    max_sealed_connections_per_ip: int = 1000
    sealed_idle_timeout: float = 120.0
    debug_connections: bool = False
    flood_close_after: int = 100
    sweep_interval: float = 60.0
    certificate_lifetime: int = 7 * 86400
    document_lifetime: int = 7 * 86400
    shutdown_timeout: float = 10.0
    auth_timeout: float = 10.0
    log_level: str = "info"
    open_federation: bool = False
    federation_backoff_cap: float = 300.0
    federation_in_flight: int = 4
    peers: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)

    def peer_policies(self) -> dict[str, PeerPolicy]:
        """The ``peers`` tables as :class:`~federation.policy.PeerPolicy` by domain."""
        return parse_peers(self.peers)

    def udp_address(self) -> tuple[str, int] | None:
        """``udp_listen`` as ``(host, port)``, or ``None`` when the node has no QUIC endpoint."""
        return parse_listen(self.udp_listen, "udp_listen") if self.udp_listen else None

    def media_internal_host(self) -> str | None:
        """Where the other replicas reach this one's media listener: ``media_internal_address``
        if set, else ``udp_listen``'s host when it is a literal IP that is neither a wildcard
        nor multicast; None without either (or without ``udp_listen``)."""
        udp = self.udp_address()
        if udp is None:
            return None
        return unicast_ip(self.media_internal_address or udp[0])

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


_FIELDS: Final = {f.name: f for f in fields(Config)}


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults < TOML file ``path`` < environment ``env`` (default ``os.environ``) <
    ``overrides`` (the command line)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_toml(Path(path)))
    values.update(_from_env(os.environ if env is None else env))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Config(**values)
    except TypeError as exc:  # a value of the wrong type reached a comparison
        raise ConfigError(f"invalid configuration: {exc}") from None


def parse_listen(text: str, key: str = "listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as ``(host, port)``; ``key`` names it in the error."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{key}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def unicast_ip(text: str) -> str | None:
    """``text`` as a canonical literal IP if it is one that is neither unspecified nor
    multicast (``[v6]`` too); else None."""
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    return None if ip.is_unspecified or ip.is_multicast else str(ip)


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    """``redis_sentinels`` (``HOST:PORT,HOST:PORT``) as a list of ``(host, port)``."""
    try:
        return [parse_listen(part.strip()) for part in text.split(",") if part.strip()]
    except ConfigError:
        raise ConfigError(f"redis_sentinels: expected HOST:PORT,..., got {text!r}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        message = f"cannot read configuration file {path}: {exc.strerror}"
        raise ConfigError(message, CONFIG_FILE) from None
    except tomllib.TOMLDecodeError as exc:
        message = f"configuration file {path} is not valid TOML: {exc}"
        raise ConfigError(message, CONFIG_FILE) from None
    for key, value in data.items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown configuration key {key!r} in {path}")
        _check_type(key, value)
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in _FIELDS:
            values[key] = _parse_env(key, name, text)
    return values


def _parse_env(key: str, name: str, text: str) -> Any:
    kind = _FIELDS[key].type
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0"):
            raise ConfigError(f"{name}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if kind != "str" and kind not in ("int", "float"):
        raise ConfigError(f"{name}: {key} can only be set in the configuration file")
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {text!r}") from None
    return text


def _check_type(key: str, value: object) -> None:
    kind = _FIELDS[key].type
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "dict[str, Any]": isinstance(value, dict),
    }[str(kind)]
    if not ok:
        raise ConfigError(f"{key}: expected {kind}, got {type(value).__name__}")


def _validate(c: Config) -> None:
    for key in _FIELDS:
        _check_type(key, getattr(c, key))
    _present(c.domain, "domain", "--domain")
    _present(c.data_dir, "data_dir", "--data")
    _require("@" not in c.domain and "/" not in c.domain, "domain", c.domain)
    _require(c.suite in SUITES, "suite", c.suite)
    _require(c.store in STORES, "store", c.store)
    _validate_redis(c)
    _require(c.client_websocket in CLIENT_WEBSOCKETS, "client_websocket", c.client_websocket)
    _require(c.log_level in LOG_LEVELS, "log_level", c.log_level)
    _require(0 <= c.listen_port <= 65535, "listen_port", c.listen_port)
    try:
        c.udp_address()
    except ConfigError:
        _require(False, "udp_listen", c.udp_listen)
    internal = c.media_internal_address
    _require(not internal or unicast_ip(internal) is not None, "media_internal_address", internal)
    envelope, frame = c.max_envelope_bytes, c.max_frame_bytes
    _require(1024 <= envelope <= WIRE_MAX_BODY, "max_envelope_bytes", envelope)
    _require(frame >= envelope + 1024, "max_frame_bytes", frame)
    _require(c.max_blob_bytes >= 1, "max_blob_bytes", c.max_blob_bytes)
    _require(1 <= c.default_ttl <= c.max_ttl, "default_ttl", c.default_ttl)
    for key in (
        "rate_account_per_s",
        "rate_ip_per_s",
        "rate_sealed_ip_per_s",
        "rate_sealed_connection_per_s",
        "rate_sealed_mailbox_per_s",
        "sealed_idle_timeout",
        "sweep_interval",
        "shutdown_timeout",
        "auth_timeout",
    ):
        _require(getattr(c, key) > 0, key, getattr(c, key))
    for key in (
        "rate_account_burst",
        "rate_ip_burst",
        "introductions_per_minute",
        "introductions_per_recipient_per_minute",
        "batched_introductions_per_minute",
        "max_connections_per_ip",
        "rate_sealed_ip_burst",
        "rate_sealed_connection_burst",
        "rate_sealed_mailbox_burst",
        "max_sealed_connections_per_ip",
        "flood_close_after",
        "certificate_lifetime",
    ):
        _require(getattr(c, key) >= 1, key, getattr(c, key))
    _require(c.federation_backoff_cap >= 1, "federation_backoff_cap", c.federation_backoff_cap)
    _require(1 <= c.federation_in_flight <= 64, "federation_in_flight", c.federation_in_flight)
    try:
        policies = parse_peers(c.peers)
    except ValueError as exc:
        raise ConfigError(f"invalid peers table: {exc}") from None
    _require(c.domain.lower() not in policies, "peers", c.domain)
    lifetime = c.document_lifetime
    _require(3600 <= lifetime <= MAX_DOCUMENT_LIFETIME, "document_lifetime", lifetime)


def _validate_redis(c: Config) -> None:
    _require(c.durability in DURABILITIES, "durability", c.durability)
    sentinels = parse_sentinels(c.redis_sentinels)
    _require(bool(c.redis_master), "redis_master", c.redis_master)
    if c.redis_url:
        _require(c.redis_url.startswith(REDIS_SCHEMES), "redis_url", c.redis_url)
    if c.store == "redis" and not (c.redis_url or sentinels):
        raise ConfigError(f"store = redis needs redis_url or redis_sentinels (see {CONFIG_DOCS})")


def _present(value: str, key: str, flag: str) -> None:
    if not value:
        where = f"give {flag}, {key} in the --config file or {ENV_PREFIX}{key.upper()}"
        raise ConfigError(f"{key} is required: {where}", CONFIG_MISSING)


def _require(ok: bool, key: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"invalid value for {key}: {value!r} (see {CONFIG_DOCS})")
