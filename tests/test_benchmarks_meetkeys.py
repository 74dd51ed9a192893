"""The meetings benchmark's rekey and trace helpers (``benchmarks.meetkeys``,
``meetrekey``, ``meettrace``, ``nodetrace``): the key bus framing, the plan of leaves, the
rekey arithmetic, and one process's participants running the client's key schedule with
sealed frames, a removal included (about a second: a real 200 ms leave batch)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio

from benchmarks import meetkeys, meetload, meetrekey, meetschedule, meettrace, nodetrace
from client.meetings.keys import EPOCH_GRACE_MS
from wire.media import HEADER_SIZE
from wire.meeting import MeetingAck

BODY = HEADER_SIZE + meetload.STAMP.size
OWNERS = [meetkeys.Owner(0, 4, "m0@meet.localhost"), meetkeys.Owner(4, 3, "m1@meet.localhost")]


def test_owner_of_and_the_bus_frame_round_trip() -> None:
    assert [meetkeys.owner_of(OWNERS, pid) for pid in (0, 3, 4, 6)] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="pid 7"):
        meetkeys.owner_of(OWNERS, 7)
    ack = MeetingAck(bytes(16), 3)
    assert meetkeys.bus_unframe(meetkeys.bus_frame(5, 0, b"key", ack)) == (5, 0, b"key", ack)


def test_roster_entries_name_every_pid_and_the_leaders_key() -> None:
    entries = meetkeys.roster_entries(OWNERS, b"\x01" * 32)
    assert [e.pid for e in entries] == list(range(7))
    assert entries[5].address == "m1@meet.localhost"
    assert len({e.fp for e in entries}) == 7


def test_leavers_are_silent_spread_and_distinct() -> None:
    singles, batch = meetrekey.leavers(200, 4, 1)
    chosen = singles + batch
    assert (len(singles), len(batch)) == (meetrekey.SINGLES, meetrekey.BATCH)
    assert len(set(chosen)) == len(chosen)
    assert all(4 <= pid < 199 for pid in chosen)
    assert max(chosen) - min(chosen) > 150
    with pytest.raises(ValueError, match="silent"):
        meetrekey.leavers(10, 4, 1)


def _merged() -> dict[str, object]:
    # epoch 1 made by removing pid 3 at t=10.0; speakers 0 and 1; participants 0..4
    switched = {(1, p): 10.3 for p in (0, 1, 2, 4)}
    switched[(1, 4)] = 10.5
    first_open = {(1, r, s): (10.4, 10.35) for r in (0, 1, 2, 4) for s in (0, 1) if r != s}
    first_open[(1, 2, 1)] = (11.0, 10.36)
    return {
        "switched": switched,
        "first_open": first_open,
        "opened": {(3, 0): 50, (3, 1): 0, (2, 1): 9},
        "no_key": {(3, 1): 120},
    }


def test_rekey_time_is_the_later_of_switching_and_hearing_every_speaker() -> None:
    leave = meetrekey.Leave(10.0, (3,), 1)
    arrival, send = meetrekey.done_times(leave, [0, 1, 2, 4], [0, 1], _merged())
    assert arrival == pytest.approx([0.4, 0.4, 1.0, 0.5])
    assert send == pytest.approx([0.35, 0.35, 0.36, 0.5])
    assert meetrekey.leaver_counts([leave], _merged()) == (0, 120)
    row = meetrekey.rekey_row("r", [leave], [leave], range(5), [0, 1], _merged(), {})
    assert row.p50_us == pytest.approx(400_000)
    assert row.p99_us == pytest.approx(1_000_000)
    assert row.extra["every_ms"] == "1000"
    assert row.extra["meets_target"] is True
    late = meetrekey.Leave(10.0, (3,), 2)  # nobody got there
    missing = meetrekey.rekey_row("r", [late], [late], range(5), [0, 1], _merged(), {})
    assert missing.extra["not_done"] == 4
    assert missing.extra["meets_target"] is False


def test_rekey_note_says_when_the_machine_starved_the_load_processes() -> None:
    starved = {"load_ran_pct": 95.0, "load_waited_pct": 370.0, "cpu_pressure_pct": 82.0}
    assert meetrekey.rekey_note(starved).startswith("bound by the machine")
    fed = {"load_ran_pct": 120.0, "load_waited_pct": 20.0, "cpu_pressure_pct": 10.0}
    assert meetrekey.rekey_note(fed).startswith("not bound")


def test_leader_costs_take_the_first_epoch_after_each_leave() -> None:
    leaves = [meetrekey.Leave(10.0, (3,), 1)]
    sent = [{"at": 5.0, "cpu_s": 1.0, "encode_cpu_s": 1.0},
            {"at": 10.25, "cpu_s": 0.002, "encode_cpu_s": 0.001}]  # fmt: skip
    assert meetrekey.leader_costs(leaves, sent) == {
        "epoch_out_ms": 250.0,
        "leader_epoch_cpu_ms": 3.0,
    }


def test_trace_helpers() -> None:
    histogram: Counter[int] = Counter()
    nodetrace.count_since(histogram, [1_000_000, 2_950_000], 3_000_000)
    assert histogram == Counter({20: 1, 0: 1})  # 100 µs buckets
    assert meettrace.percentile_ms({0: 1, 20: 1}, 99, 100) == pytest.approx(2.1)
    shares = meettrace.sched_shares({"node": (0, 0)}, {"node": (10**8, 9 * 10**8)}, 1.0)
    assert shares == {"node_ran_pct": 10.0, "node_waited_pct": 90.0}
    assert nodetrace.sent_at(bytes(5)) is None
    starved = {"node_ran_pct": 6.0, "node_waited_pct": 92.0, "cpu_pressure_pct": 98.0}
    assert meettrace.verdict(0.1, starved, 0.0).startswith("bound by the machine")
    half = {"node_ran_pct": 49.0, "node_waited_pct": 52.0, "cpu_pressure_pct": 84.0}
    assert meettrace.verdict(118.0, half, 0.0).startswith("bound by the machine")
    idle = {"node_ran_pct": 20.0, "node_waited_pct": 1.0, "cpu_pressure_pct": 5.0}
    assert meettrace.verdict(0.1, idle, 0.3).startswith("bound by QUIC")
    assert meettrace.verdict(9.0, idle, 0.0).startswith("not bound by the machine")


async def _one_process(tmp: Path) -> None:
    owners = [meetkeys.Owner(0, 5, "m0@meet.localhost")]
    keys = meetkeys.Keys(bytes(16), range(5), "cnsa2", meetkeys.KeyBus(tmp, 0, owners))
    keys.bus.open()
    with keys.bus:
        await _exercise(keys, owners)


async def _exercise(keys: meetkeys.Keys, owners: list[meetkeys.Owner]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keys.run, nursery)
        await keys.start(owners)
        with trio.fail_after(10):
            await keys.sending.wait()
        frame = meetload.datagram(9, 1, 0, 20, lambda m, p: keys.seal(1, m, p))
        stamp, body = frame[HEADER_SIZE:BODY], frame[BODY:]
        assert meetload.STAMP.unpack(stamp)[3] == 1
        keys.on_frame(2, stamp, body, 0.0)
        assert keys.records.opened[(2, 0)] == 1
        keys.remove(4)
        for _ in range(200):  # the 200 ms batch, the acks, the switch: well within 10 s
            if keys.members[0].send_epoch == 1:
                break
            await trio.sleep(0.05)
        newer = meetload.datagram(9, 1, 1, 20, lambda m, p: keys.seal(1, m, p))
        keys.on_frame(4, newer[HEADER_SIZE:BODY], newer[BODY:], 0.0)  # the removed one
        keys.on_frame(2, newer[HEADER_SIZE:BODY], newer[BODY:], 0.0)
        assert keys.records.no_key[(4, 1)] == 1
        assert keys.records.opened[(2, 1)] == 1
        assert (1, 3) in keys.records.switched
        assert not keys.settled(1, [1], {4})  # pids 0 and 3 have not heard pid 1 under 1
        for pid in (0, 3):
            keys.on_frame(pid, newer[HEADER_SIZE:BODY], newer[BODY:], 0.0)
        assert keys.settled(1, [1], {4})  # everyone but the removed one; pid 1 alone speaks
        assert not keys.settled(1, [1], set())
        assert keys.members[4].send_epoch == 0  # it never got epoch 1
        assert keys.records.failures == keys.records.rejected == 0
        assert [e["n"] for e in keys.records.epochs_sent] == [4, 3]
        nursery.cancel_scope.cancel()


def test_one_process_keys_seal_open_and_cut_off_a_removed_participant(tmp_path: Path) -> None:
    assert EPOCH_GRACE_MS > 1000  # the removed one still holds epoch 0 during the test
    trio.run(_one_process, tmp_path)


def test_the_key_schedule_alone_row() -> None:
    row = meetschedule.run_schedule(quick=True)  # 20 participants, 3 leaves: about a second
    assert row.samples == 19 + 18 + 17
    assert row.extra["not_done"] == 0
    assert row.p99_us is not None
    assert row.p99_us > 200_000  # the 200 ms leave batch comes first


async def _two_processes(tmp: Path) -> None:
    owners = [meetkeys.Owner(0, 3, "m0@meet.localhost"), meetkeys.Owner(3, 3, "m1@meet.localhost")]
    meeting = bytes(16)
    here = meetkeys.Keys(meeting, range(3), "cnsa2", meetkeys.KeyBus(tmp, 0, owners))
    there = meetkeys.Keys(meeting, range(3, 6), "cnsa2", meetkeys.KeyBus(tmp, 1, owners))
    here.bus.open()
    there.bus.open()
    with here.bus, there.bus:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(here.run, nursery)
            nursery.start_soon(there.run, nursery)
            await here.start(owners)
            with trio.fail_after(10):
                await here.sending.wait()
                await there.sending.wait()
            assert there.members[5].send_epoch == 0
            nursery.cancel_scope.cancel()


def test_key_messages_cross_between_processes_over_the_bus(tmp_path: Path) -> None:
    trio.run(_two_processes, tmp_path)
