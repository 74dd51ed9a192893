"""Shared makings for the federation tests: server keys, root keys, signed documents."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from node.keys import ServerKeys, generate
from node.rootkeys import certify
from suites import get_suite, rootsig
from wire import encode

NOW = 1_800_000_000_000
DAY_MS = 86_400_000
DOC_LIFETIME_S = 7 * 86400


@dataclass
class Agency:
    domain: str
    keys: ServerKeys
    root: tuple[bytes, bytes]

    @property
    def root_pin(self) -> str:
        return rootsig.fingerprint(self.root[0])

    @property
    def key_pin(self) -> str:
        return rootsig.fingerprint(self.keys.sig_public)

    def certified(self, now: int = NOW) -> Agency:
        return Agency(self.domain, certify(self.keys, self.domain, self.root, now, 365), self.root)

    def document(self, now: int = NOW) -> bytes:
        doc = self.keys.sign_document(self.domain, (f"https://{self.domain}",), now, DOC_LIFETIME_S)
        return encode(doc)


_ROOTS: list[tuple[bytes, bytes]] = []


def _root(i: int) -> tuple[bytes, bytes]:
    while len(_ROOTS) <= i:  # SLH-DSA key generation is cheap; signing is the slow part
        _ROOTS.append(rootsig.generate())
    return _ROOTS[i]


def make_agency(domain: str, index: int = 0, suite: str = "xwing") -> Agency:
    return Agency(domain, generate(get_suite(suite)), _root(index))


@pytest.fixture(scope="module")
def agency_a() -> Agency:
    return make_agency("a.example", 0).certified()


@pytest.fixture(scope="module")
def agency_c() -> Agency:
    return make_agency("c.example", 1).certified()
