"""Signed federation requests: what the signature covers, the window and the nonces."""

from __future__ import annotations

import os

import pytest

from federation.errors import ClockSkew, RequestAuthError
from federation.requestsig import (
    HEADER_DESTINATION,
    HEADER_NONCE,
    HEADER_TIME,
    WINDOW_MS,
    NonceCache,
    check_time,
    parse_request,
    sign_request,
    verify_signature,
)
from node.keys import ServerKeys
from tests.federation.conftest import NOW, Agency
from wire.server import ServerVerifyKeyEntry

PATH = "/federation/v1/send/" + "ab" * 16
BODY = b"transaction bytes"


def _entry(keys: ServerKeys) -> ServerVerifyKeyEntry:
    return ServerVerifyKeyEntry(keys.sig_key_id, keys.suite.suite_id, keys.sig_public, NOW + 10**9)


def _headers(agency: Agency, **changes: object) -> dict[str, str]:
    keys = agency.keys
    args: dict[str, object] = {
        "method": "PUT",
        "path": PATH,
        "origin": agency.domain,
        "destination": "b.example",
        "body": BODY,
        "now_ms": NOW,
        "nonce": os.urandom(16),
    }
    args.update(changes)
    return sign_request(keys.suite, keys.sig_key, keys.sig_key_id, **args)  # type: ignore[arg-type]


def test_a_signed_request_verifies(agency_a: Agency) -> None:
    claim = parse_request("PUT", PATH, _headers(agency_a), BODY, "b.example")
    verify_signature(claim, _entry(agency_a.keys))
    check_time(claim, NOW + WINDOW_MS)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", PATH, BODY), ("PUT", PATH + "00", BODY), ("PUT", PATH, BODY + b"!")],
)
def test_changing_what_was_signed_fails(
    agency_a: Agency, method: str, path: str, body: bytes
) -> None:
    claim = parse_request(method, path, _headers(agency_a), body, "b.example")
    with pytest.raises(RequestAuthError):
        verify_signature(claim, _entry(agency_a.keys))


def test_headers_changed_in_transit_fail(agency_a: Agency, agency_c: Agency) -> None:
    headers = _headers(agency_a)
    for key, value in ((HEADER_TIME, str(NOW + 1)), (HEADER_NONCE, "00" * 16)):
        claim = parse_request("PUT", PATH, {**headers, key: value}, BODY, "b.example")
        with pytest.raises(RequestAuthError):
            verify_signature(claim, _entry(agency_a.keys))
    claim = parse_request("PUT", PATH, headers, BODY, "b.example")
    with pytest.raises(RequestAuthError):
        verify_signature(claim, _entry(agency_c.keys))  # another domain's key


def test_a_request_for_another_destination_or_malformed_is_refused(agency_a: Agency) -> None:
    headers = _headers(agency_a)
    with pytest.raises(RequestAuthError):
        parse_request("PUT", PATH, headers, BODY, "c.example")
    with pytest.raises(RequestAuthError):
        parse_request(
            "PUT", PATH, {k: v for k, v in headers.items() if k != HEADER_NONCE}, BODY, "b.example"
        )
    with pytest.raises(RequestAuthError):
        parse_request(
            "PUT",
            PATH,
            {**headers, HEADER_DESTINATION: "b.example", HEADER_TIME: "x"},
            BODY,
            "b.example",
        )


def test_the_time_window_is_five_minutes(agency_a: Agency) -> None:
    claim = parse_request("PUT", PATH, _headers(agency_a), BODY, "b.example")
    check_time(claim, NOW - WINDOW_MS)
    with pytest.raises(RequestAuthError):
        check_time(claim, NOW + WINDOW_MS + 1)
    with pytest.raises(RequestAuthError):
        check_time(claim, NOW - WINDOW_MS - 1)


def test_a_time_outside_the_window_names_the_skew(agency_a: Agency) -> None:
    claim = parse_request("PUT", PATH, _headers(agency_a), BODY, "b.example")
    with pytest.raises(ClockSkew) as ahead:
        check_time(claim, NOW - 360_000)  # the signer's clock is 6 minutes ahead
    assert ahead.value.skew_ms == 360_000
    assert ahead.value.code == "fed.auth"
    assert "360.0 s ahead of the receiver's clock" in ahead.value.message
    with pytest.raises(ClockSkew) as behind:
        check_time(claim, NOW + WINDOW_MS + 1)
    assert behind.value.skew_ms == -WINDOW_MS - 1
    assert "behind the receiver's clock" in behind.value.message


def test_the_nonce_cache_refuses_a_replay_for_as_long_as_the_window() -> None:
    cache = NonceCache()
    nonce = os.urandom(16)
    assert cache.remember("a.example", nonce, NOW)
    assert not cache.remember("a.example", nonce, NOW + 1)
    assert cache.remember("c.example", nonce, NOW + 1)  # per origin
    assert not cache.remember("a.example", nonce, NOW + 2 * WINDOW_MS - 1)
    assert cache.remember("a.example", nonce, NOW + 2 * WINDOW_MS + 1)  # long out of window


# Found by fuzzing (tests/fuzz, the request_signature target): a header the statement
# cannot hold raised WireError out of parse_request (a 500 and a logged traceback).


@pytest.mark.parametrize(
    ("method", "path", "origin"),
    [("PUT", PATH, "o" * 254), ("P" * 17, PATH, "a.example"), ("PUT", "/" * 2049, "a.example")],
)
def test_a_request_the_statement_cannot_hold_is_refused(
    agency_a: Agency, method: str, path: str, origin: str
) -> None:
    headers = _headers(agency_a)
    headers["sealrelay-origin"] = origin
    with pytest.raises(RequestAuthError):
        parse_request(method, path, headers, BODY, "b.example")


@pytest.mark.parametrize(
    "time", ["+1800000000000", " 1800000000000", "1_800_000_000_000", "\u0661"]
)
def test_the_time_header_is_plain_ascii_digits(agency_a: Agency, time: str) -> None:
    headers = _headers(agency_a)
    headers[HEADER_TIME] = time
    with pytest.raises(RequestAuthError):
        parse_request("PUT", PATH, headers, BODY, "b.example")
