"""Client CPU of group messaging per suite, in a group of :data:`MEMBERS` members.

- ``encrypt 1 KiB``: one sender-key message (chain step, AES-256-GCM of the padded
  content, one hybrid signature). It does not depend on the member count: the body is
  encrypted and signed once, whoever receives it;
- ``encrypt+decrypt 1 KiB``: the same, opened by one receiver (signature check included);
- ``apply removal``: a member checks an admin's removal change (hybrid signature
  verification) and computes the next state and its hash over all members;
- ``removal rotation``: ``apply removal`` plus a new sending chain (chain key and hybrid
  signing key) and its distribution bytes. The distribution then goes to every remaining
  member device over its pairwise session; those pairwise encryptions (one ratchet step
  and sealed sender each, see the ``client`` module's ``steady`` case) are *not* included.
- ``send to 200 members``: what the sender's CPU does for one 1 KiB group message to the
  other 199 members spread over three domains (``client.groupnet``): encrypt once, wrap
  under the group transport key (padded), build one upload per destination domain (a
  ``SendShared`` naming the home members' mailboxes and tokens, and for each of the two
  other domains a routing layer naming its members, HPKE-sealed to that domain's KEM
  key), and encode the three frames. ``upload_bytes`` is what goes to the home node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from benchmarks.harness import Result, measure
from client.entropy import SYSTEM_ENTROPY as _ENTROPY
from client.groupnet import uploads, wrap
from client.groups import Group, GroupView, make_change, member_of, verify_change
from client.identity import Identity
from node.keys import generate as generate_server_keys
from suites import SUITE_NAMES, Suite, get_suite
from wire import decode, encode
from wire.group import GroupMember, OpRemove, SenderKeyMessage
from wire.server import ServerKeyDocument

MEMBERS: Final = 200
DOMAINS: Final = ("a.bench.example", "b.bench.example", "c.bench.example")
PAYLOAD: Final = bytes(range(256)) * 4


def _others(suite: Suite, count: int) -> tuple[GroupMember, ...]:
    return tuple(
        member_of(suite, f"m{i}@bench.example", {1: suite.sig.generate()[1]}) for i in range(count)
    )


def _groups(suite: Suite) -> tuple[Group, Group]:
    """The creator's and one member's view of a fresh group of :data:`MEMBERS` members."""
    admin_id = Identity.generate(suite, _ENTROPY)
    reader_id = Identity.generate(suite, _ENTROPY)
    reader = member_of(suite, "reader@bench.example", {1: reader_id.public.sig})
    others = (reader, *_others(suite, MEMBERS - 2))
    admin, _ = Group.create(admin_id, "admin@bench.example", 1, "bench", others, _ENTROPY)
    member = Group.join(reader_id, "reader@bench.example", 1, admin.welcome(), _ENTROPY)
    member.receive_distribution("admin@bench.example", 1, admin.distribution())
    return admin, member


def _encrypt(admin: Group) -> Callable[[], object]:
    def step() -> object:
        return admin.encrypt(PAYLOAD)

    return step


def _round_trip(admin: Group, member: Group) -> Callable[[], object]:
    def step() -> object:
        return member.decrypt(admin.encrypt(PAYLOAD))

    return step


def _removal(admin: Group, view: GroupView) -> Callable[[], GroupView]:
    change = make_change(
        view, admin.identity, admin.address, 1, OpRemove(address="m0@bench.example")
    )

    def apply() -> GroupView:
        return verify_change(view, change)

    return apply


def _rotation(member: Group, apply: Callable[[], GroupView]) -> Callable[[], object]:
    def rotate() -> object:
        removed = apply()
        member.keys.forget(frozenset({"m0@bench.example"}))
        return removed, member.keys.rotate(_ENTROPY)

    return rotate


def _fan_out(suite: Suite, admin: Group) -> tuple[Callable[[], list[bytes]], int]:
    """One group message to the other ``MEMBERS - 1`` members over :data:`DOMAINS`; the
    step and the bytes it uploads."""
    now = int(time.time() * 1000)
    docs: dict[str, ServerKeyDocument] = {
        d: generate_server_keys(suite).key_document(d, ("http://127.0.0.1:1",), now, 86_400)
        for d in DOMAINS[1:]
    }
    recipients: dict[str, list[tuple[bytes, bytes | None]]] = {d: [] for d in DOMAINS}
    for i in range(MEMBERS - 1):
        mailbox, token = _ENTROPY.random_bytes(16), _ENTROPY.random_bytes(16)
        recipients[DOMAINS[i % len(DOMAINS)]].append((mailbox, token))
    key = _ENTROPY.random_bytes(32)

    def step() -> list[bytes]:
        body = wrap(suite.suite_id, key, admin.encrypt(PAYLOAD), _ENTROPY.random_bytes(12))
        items = uploads(DOMAINS[0], recipients, docs, body, 0, now, _ENTROPY)
        return [encode(item.request()) for item in items]

    return step, sum(len(frame) for frame in step())


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    for name in SUITE_NAMES:
        suite = get_suite(name)
        admin, member = _groups(suite)
        body = admin.encrypt(PAYLOAD)
        member.decrypt(body)
        extra = {
            "members": MEMBERS,
            "message_bytes": len(body),
            "signature_bytes": len(decode(body, SenderKeyMessage).sig),
        }
        results.append(
            measure(
                "encrypt 1 KiB",
                _encrypt(admin),
                quick=quick,
                group=name,
                extra=extra,
            )
        )
        results.append(
            measure("encrypt+decrypt 1 KiB", _round_trip(admin, member), quick=quick, group=name)
        )
        fan_out, sent = _fan_out(suite, admin)
        results.append(
            measure(
                "send to 200 members (encrypt, wrap, 3 uploads)",
                fan_out,
                quick=quick,
                group=name,
                extra={"members": MEMBERS, "domains": len(DOMAINS), "upload_bytes": sent},
            )
        )
        apply = _removal(admin, admin.state.view)
        results.append(
            measure("apply removal", apply, quick=quick, group=name, extra={"members": MEMBERS})
        )
        dist = len(member.keys.distribution())
        results.append(
            measure(
                "removal rotation (excl. pairwise sends)",
                _rotation(member, apply),
                quick=quick,
                group=name,
                extra={"members": MEMBERS, "distribution_bytes": dist},
            )
        )
    return results
