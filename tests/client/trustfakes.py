"""Agency roots, certified server keys and peer-roots statements for the client's
cross-domain trust tests (``client.domaintrust``), built with the product's own node-side
tools (``node.keys``, ``node.rootkeys``, ``node.peerroots``) and only ``wire``/``suites``
formats, so they serve tests of earlier client code as well.

SLH-DSA signing takes about half a second: roots are made once per name and process."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from node.keys import ServerKeys, generate
from node.peerroots import make_statement
from node.rootkeys import certify
from suites import get_suite, labels, rootsig
from tests.client.pairs import DAY_MS, Clock, Domain
from wire import encode
from wire.server import RootCertification, RootCertificationBody

Root = tuple[bytes, bytes]
DOC_LIFETIME_S = 7 * 86_400


@functools.cache
def root(name: str) -> Root:
    """The (public, secret) root key called ``name`` (one per process)."""
    return rootsig.generate()


def fingerprint(r: Root) -> str:
    return rootsig.fingerprint(r[0])


def server_keys(domain: str, by: Root | None, now_ms: int, suite: str = "xwing") -> ServerKeys:
    """Fresh server keys, certified for ``domain`` by root ``by`` (none if ``None``)."""
    keys = generate(get_suite(suite))
    return keys if by is None else certify(keys, domain, by, now_ms, 30)


def document(keys: ServerKeys, domain: str, now_ms: int) -> bytes:
    """The signed key document of ``keys`` for ``domain``, encoded."""
    return encode(keys.sign_document(domain, (), now_ms, DOC_LIFETIME_S))


def certification(by: Root, domain: str, verify_key: bytes, now_ms: int) -> RootCertification:
    """``by``'s certification that ``verify_key`` may sign for ``domain`` for 30 days."""
    body = RootCertificationBody(domain, verify_key, now_ms, now_ms + 30 * DAY_MS)
    signature = rootsig.sign(by[1], encode(body), labels.CTX_ROOT_CERTIFICATION)
    return RootCertification(body, rootsig.ALGORITHM, by[0], signature)


def statement(
    by: Root, home: str, peers: Mapping[str, Root], now_ms: int, days: int = 365
) -> bytes:
    """``by``'s statement that ``home``'s clients may trust each peer's root."""
    return make_statement(by, home, {d: [fingerprint(r)] for d, r in peers.items()}, now_ms, days)


def signing_domain(name: str, keys: ServerKeys, clock: Clock) -> Domain:
    """A ``tests.client.pairs.Domain`` named ``name`` whose certificates ``keys`` sign:
    the genuine domain when ``keys`` are its own, a forgery when they are another's."""
    domain = Domain(keys.suite, name, keys.sig_key, keys.sig_key_id, clock)
    assert domain.verify_key().public == keys.sig_public
    return domain
