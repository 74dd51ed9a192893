"""The delivery checker's rules, on made-up reports (a pure core: no sockets)."""

from __future__ import annotations

import itertools

import pytest

from tests.resilience.checker import Checker

A, B = b"mailbox-a", b"mailbox-b"


def body(eid: bytes) -> bytes:
    return b"body of " + eid


def checker() -> Checker:
    ticks = itertools.count()
    return Checker(body_of=body, clock=lambda: float(next(ticks)))


def sent(c: Checker, eid: bytes, mailbox: bytes = A, link: str = "a>b") -> None:
    c.attempt(eid, mailbox, link)
    c.acknowledged(eid)


def test_every_acknowledged_envelope_delivered_once_is_valid() -> None:
    c = checker()
    for eid in (b"e1", b"e2"):
        sent(c, eid)
        assert c.pushed(A, eid, body(eid))
    c.confirmed([b"e1", b"e2"])
    c.attempt(b"e3", A)  # attempted, never acknowledged: not owed
    assert c.valid()
    counts = c.counts()
    assert (counts["attempted"], counts["acknowledged"], counts["delivered"]) == (3, 2, 2)
    assert "valid" in c.table()


def test_an_acknowledged_envelope_never_delivered_is_lost() -> None:
    c = checker()
    sent(c, b"e1")
    assert c.lost() == {b"e1"}
    assert c.problems() == ["lost = 1"]
    assert "INVALID" in c.table()


def test_a_push_before_the_ack_was_confirmed_is_a_redelivery_not_a_duplicate() -> None:
    c = checker()
    sent(c, b"e1")
    assert c.pushed(A, b"e1", body(b"e1"))
    assert not c.pushed(A, b"e1", body(b"e1"))  # the application drops it by eid
    assert c.counts()["redelivered"] == 1
    assert c.valid()


def test_a_push_after_the_ack_was_confirmed_is_a_duplicate() -> None:
    c = checker()
    sent(c, b"e1")
    c.pushed(A, b"e1", body(b"e1"))
    c.confirmed([b"e1"])
    c.pushed(A, b"e1", body(b"e1"))
    assert c.counts()["duplicated"] == 1
    assert c.counts()["redelivered"] == 0
    assert not c.valid()


@pytest.mark.parametrize(
    ("mailbox", "eid", "data", "problem"),
    [
        (A, b"never-sent", b"x", "unexpected = 1"),
        (B, b"e1", body(b"e1"), "misrouted = 1"),
        (A, b"e1", b"other bytes", "corrupt = 1"),
    ],
)
def test_wrong_deliveries_make_the_run_invalid(
    mailbox: bytes, eid: bytes, data: bytes, problem: str
) -> None:
    c = checker()
    sent(c, b"e1")
    c.pushed(mailbox, eid, data)
    assert problem in c.problems()


def test_resumed_is_the_first_delivery_over_the_link_after_a_time() -> None:
    c = checker()  # the clock ticks once per acknowledgement and per first push
    for eid, link in ((b"e1", "a>b"), (b"e2", "b>a"), (b"e3", "a>b")):
        sent(c, eid, link=link)
    c.pushed(A, b"e1", body(b"e1"))  # t = 3
    c.pushed(A, b"e2", body(b"e2"))  # t = 4
    c.pushed(A, b"e3", body(b"e3"))  # t = 5
    assert c.resumed("a>b", 0.0) == 3.0
    assert c.resumed("a>b", 3.0) == 5.0
    assert c.resumed("b>a", 4.0) is None


def test_an_eid_may_not_change_recipient() -> None:
    c = checker()
    c.attempt(b"e1", A)
    with pytest.raises(ValueError, match="reused"):
        c.attempt(b"e1", B)
