"""A member removed from the group during its meeting, against a real node process with
``udp_listen`` (issue 18, done when: "a removed participant, still connected, decrypts
nothing after the switch"). Four in-process clients of one domain form a group; each runs
the group's meeting as ``sealrelay client meet`` does (``client.meetings.meet.Meet`` over
the client library; media over QUIC to the node's SFU). With everyone in and talking, the
admin ann removes a member from the group:

* dan, while ann hosts and leads the keys: ann drops dan (cause ``REMOVE``) and the others
  switch to a fresh epoch;
* bob, the host and key leader itself: the earliest-joined remaining participant takes
  over with a fresh epoch (``HANDOVER``) for the others.

Either way the removed member's client goes on running, its leg still in the room: it
receives the others' audio and opens none of it from the switch on, while the others keep
opening each other's frames and never fail one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any, Final

import pytest
import trio

from tests.integration.fedharness import LocalFederation, Person, wait_until
from tests.integration.meetharness import Seat, seat
from wire.meeting import EpochCause

pytestmark = pytest.mark.slow

DOMAIN: Final = "meet-remove.test"
EXTRA: Final = (
    'udp_listen = "127.0.0.1:0"\n'
    "introductions_per_minute = 100000\nintroductions_per_recipient_per_minute = 100000"
)
NAMES: Final = ("ann", "bob", "cat", "dan")
ADMIN: Final = "ann"
SECONDS: Final = 30.0
"""Each member's media (the meeting ends by itself; the test is done well before)."""
TALKING: Final = 1.5
"""Seconds of the whole meeting before the removal."""
IN_FLIGHT: Final = 0.5
"""Seconds after the switch for frames sent before it to arrive."""
AFTER: Final = 3.0
"""Seconds watched after that."""
WITHIN: Final = 60.0


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Person]]:
    base = tmp_path_factory.mktemp("meetremove")
    fed = LocalFederation(base / "fed", [DOMAIN], extra=EXTRA)
    try:
        fed.start()
        homes = {name: (DOMAIN, base / name) for name in NAMES}
        yield trio.run(fed.enroll_all, homes)
    finally:
        fed.close()


@pytest.mark.parametrize(
    ("host", "gone", "cause"),
    [("ann", "dan", EpochCause.REMOVE), ("bob", "bob", EpochCause.HANDOVER)],
    ids=["a-member", "the-key-leader"],
)
def test_a_removed_member_still_connected_decrypts_nothing_after_the_switch(
    people: dict[str, Person], host: str, gone: str, cause: EpochCause
) -> None:
    async def main() -> dict[str, Any]:
        async with AsyncExitStack() as stack:
            clients = {name: people[name].load() for name in NAMES}
            for client in clients.values():
                await stack.enter_async_context(client.online())
            admin = clients[ADMIN]
            others = [clients[n].device.address for n in NAMES if n != ADMIN]
            group = await admin.group_create("crisis", others)

            def grouped() -> bool:
                return all(
                    (ng := c.groups.get(group)) is not None and ng.keys for c in clients.values()
                )

            await wait_until(grouped, WITHIN, "every member in the group")
            seats = {name: seat(client, group, SECONDS) for name, client in clients.items()}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(seats[host].meet.run)
                await wait_until(lambda: bool(seats[host].meet.rooms), WITHIN, "the host")
                for name in NAMES:
                    if name != host:
                        nursery.start_soon(seats[name].meet.run)
                out = await _remove_during(seats, group, host, gone)
                nursery.cancel_scope.cancel()
            return out

    out = trio.run(main)
    gone_at, gone_end = out["gone_at"], out["gone_end"]
    assert gone_end[0] == gone_at[0], out  # dan opened nothing from the switch on
    assert gone_end[1] > gone_at[1], out  # ... while the others' frames kept reaching it
    assert gone_end[2] == 0, out
    assert out["gone_before"][0] > 0, out  # it had opened frames before
    assert out["cause"] is cause, out
    for name in NAMES:
        if name == gone:
            continue
        at, end = out["at"][name], out["end"][name]
        assert end[0] > at[0], (name, out)  # the others go on opening each other's frames
        assert end[2] == 0, (name, out)
        assert out["speakers"][name] >= 2, (name, out)
    assert out["still_in"], out  # dan's client went on with its meeting throughout
    assert out["switch_s"] < 5.0, out


async def _remove_during(
    seats: dict[str, Seat], group: bytes, host: str, gone_name: str
) -> dict[str, Any]:
    """Everyone in and talking; the admin removes ``gone_name``; the switch; what each
    opened after it."""
    rest = [seats[n] for n in NAMES if n != gone_name]
    gone = seats[gone_name]

    def everyone_in() -> bool:
        leader = seats[host].core.leader
        return leader is not None and all(
            s.meet.rooms
            and len(s.core.participants) == len(NAMES)
            and s.core.member is not None
            and s.core.member.send_epoch == leader.epoch
            for s in seats.values()
        )

    await wait_until(everyone_in, WITHIN, "the four in one meeting, one epoch")
    await trio.sleep(TALKING)
    first = seats[host].core.leader
    assert first is not None
    before = first.epoch
    gone_before = gone.opened()
    gone_address = gone.client.device.address
    started = trio.current_time()
    assert not await seats[ADMIN].client.group_change(group, remove=[gone_address])

    def switched() -> bool:
        leaders = [s.core.leader for s in rest if s.core.leader is not None]
        return len(leaders) == 1 and all(
            s.core.member is not None
            and s.core.member.send_epoch == leaders[0].epoch > before
            and gone_address not in s.core.participants.values()
            for s in rest
        )

    await wait_until(switched, WITHIN, "the others switched to an epoch without it", poll=0.02)
    switch_s = trio.current_time() - started
    leader = next(s.core.leader for s in rest if s.core.leader is not None)
    roster = leader.member.roster
    assert roster is not None
    assert gone.core.member is not None
    assert not gone.core.member.holds(leader.epoch)
    await trio.sleep(IN_FLIGHT)
    at = {n: s.opened() for n, s in seats.items()}
    await trio.sleep(AFTER)
    end = {n: s.opened() for n, s in seats.items()}
    return {
        "cause": roster.cause,
        "gone_before": gone_before,
        "gone_at": at[gone_name],
        "gone_end": end[gone_name],
        "at": at,
        "end": end,
        "speakers": {n: len(s.meet.rooms[-1].speakers) for n, s in seats.items()},
        "still_in": gone.core.meeting is not None,
        "switch_s": switch_s,
    }
