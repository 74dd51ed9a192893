"""No node process holds a meeting's media keys (issue 18, done when: "the node processes'
memory holds no media key (the same scan as the 1:1 issue)").

A group of three over two domains meets as ``sealrelay client meet`` does, in this process:
the key schedule's messages travel as pairwise sealed messages through both nodes, the
media over QUIC to each member's own node, and bravo's node joins the room at alpha's (the
cascade). With everyone in one epoch and the media flowing, the readable memory of both
node processes is scanned for every epoch secret a member holds and, for every
participant, its SFrame base key and the AES key and salt SFrame derives from it (RFC 9605
section 4.4.2). The needles are checked against the keys the members really use (a frame
sealed by one member's ``MeetingCrypto`` opens with them); a positive control (the room id,
which each node must hold) shows the scan reads the right memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Final

import pytest
import trio

from client.meetings.keys import SUITE, kid
from client.meetings.media import MeetingCrypto
from suites import sframe
from tests.integration.callharness import scan_memory
from tests.integration.fedharness import LocalFederation, Person, wait_until
from tests.integration.meetharness import Seat, seat

pytestmark = pytest.mark.slow

A: Final = "meet-mem-a.test"
B: Final = "meet-mem-b.test"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
PEOPLE: Final = (("ann", A), ("bob", B), ("cat", A))
SECONDS: Final = 60.0
"""Each member's media (the test cancels the meetings once the scans are done)."""
TALKING: Final = 1.0
WITHIN: Final = 90.0


@pytest.fixture(scope="module")
def people(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalFederation, dict[str, Person]]]:
    base = tmp_path_factory.mktemp("meetmem")
    fed = LocalFederation(base / "fed", [A, B], extra=EXTRA)
    try:
        fed.start()
        homes = {name: (domain, base / name) for name, domain in PEOPLE}
        yield fed, trio.run(fed.enroll_all, homes)
    finally:
        fed.close()


def _needles(seats: dict[str, Seat]) -> dict[str, bytes]:
    """Every epoch secret the members hold, and each participant's keys in each epoch."""
    found: dict[str, bytes] = {}
    for name, one in seats.items():
        member = one.core.member
        assert member is not None
        for epoch, secret in member._secrets.items():  # the test reads what the client holds
            found[f"epoch secret {epoch}"] = secret
            for pid in member.present():
                base = member.recv_key(kid(epoch, pid))
                if base is None:
                    continue
                key, salt = sframe.derive_key_salt(SUITE, kid(epoch, pid), base)
                found[f"base key {epoch} {pid}"] = base
                found[f"sframe key {epoch} {pid}"] = key
                found[f"sframe salt {epoch} {pid}"] = salt
        assert found, name
    return found


def _check_needles(seats: dict[str, Seat], needles: dict[str, bytes]) -> None:
    """A frame sealed by a member's own ``MeetingCrypto`` opens with the needles' key and
    salt: the scan looks for the keys really in use."""
    member = seats["ann"].core.member
    assert member is not None
    sealed = MeetingCrypto(member).protect(b"metadata", b"a frame")
    header = sframe.decode_header(sealed)
    epoch, pid = member.send_epoch, member.pid
    assert epoch is not None
    key, salt = needles[f"sframe key {epoch} {pid}"], needles[f"sframe salt {epoch} {pid}"]
    assert header.kid == kid(epoch, pid)
    opened = sframe.decrypt(SUITE, key, salt, header, sealed, b"metadata")
    assert opened == b"a frame"


def test_no_node_process_holds_a_meeting_key(
    people: tuple[LocalFederation, dict[str, Person]],
) -> None:
    fed, persons = people

    async def main() -> tuple[dict[str, bytes], dict[str, tuple[set[str], int]], bytes]:
        async with AsyncExitStack() as stack:
            clients = {name: persons[name].load() for name, _ in PEOPLE}
            for client in clients.values():
                await stack.enter_async_context(client.online())
            others = [clients[n].device.address for n, _ in PEOPLE[1:]]
            group = await clients["ann"].group_create("crisis", others)

            def grouped() -> bool:
                return all(
                    (ng := c.groups.get(group)) is not None and ng.keys for c in clients.values()
                )

            await wait_until(grouped, WITHIN, "every member in the group")
            seats = {name: seat(client, group, SECONDS) for name, client in clients.items()}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(seats["ann"].meet.run)
                await wait_until(lambda: bool(seats["ann"].meet.rooms), WITHIN, "the host")
                for name in ("bob", "cat"):
                    nursery.start_soon(seats[name].meet.run)

                def everyone_in() -> bool:
                    leader = seats["ann"].core.leader
                    return leader is not None and all(
                        s.meet.rooms
                        and len(s.core.participants) == len(PEOPLE)
                        and s.core.member is not None
                        and s.core.member.send_epoch == leader.epoch
                        and s.opened()[0] > 0
                        for s in seats.values()
                    )

                await wait_until(everyone_in, WITHIN, "the three in one meeting, media flowing")
                await trio.sleep(TALKING)
                needles = _needles(seats)
                _check_needles(seats, needles)
                room = seats["ann"].core.room
                assert room is not None
                scans = {}
                for domain in (A, B):
                    proc = fed.nodes[domain].proc
                    assert proc is not None
                    scans[domain] = await trio.to_thread.run_sync(
                        scan_memory, proc.pid, {**needles, "room id": room}
                    )
                assert all(s.opened()[2] == 0 for s in seats.values())
                nursery.cancel_scope.cancel()
            return needles, scans, room

    needles, scans, _ = trio.run(main)
    assert any(name.startswith("sframe key") for name in needles)
    for domain in (A, B):
        found, scanned = scans[domain]
        assert scanned > 1 << 20, f"{domain}: only {scanned} bytes read"
        leaked = found & set(needles)
        assert not leaked, f"{domain}'s memory holds {sorted(leaked)}"
        assert "room id" in found, f"{domain}: the control was not found"
