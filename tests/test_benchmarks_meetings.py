"""The meetings benchmark (``make bench meetings``; ``benchmarks.meetings``): it runs only
when named, its row arithmetic (histogram percentiles, relay-added latency, loss, join
time, forwarding per CPU-second), the core micro-benchmark's room and the load generator's
probe stamps, the cascade run's link rows (``benchmarks.meetlink``). The quick run itself
starts a node process and its load processes, then three node processes of a cascade and
three load processes (about 50 s on the 2-core machine), so it is marked ``long``: ``make
resilience`` runs it, ``make test`` does not."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import harness, meetcore, meetings, meetlink, meetload, meetrows
from benchmarks.__main__ import main
from wire.media import HEADER_SIZE, peek_route


def test_meetings_runs_only_when_named() -> None:
    assert "meetings" not in harness.MODULES
    assert "meetings" in harness.NAMED_ONLY
    assert harness.load("meetings") is meetings.run


def _meeting(histogram: dict[int, int], base: dict[int, int], received: int) -> meetrows.Meeting:
    return meetrows.Meeting(
        participants=200,
        speakers=4,
        seconds=20.0,
        sent=4000,  # 4 speakers, 50 frames a second, 20 s
        received=received,
        histogram=histogram,
        base_sent=1000,
        base_received=990,
        base_histogram=base,
        node_cpu_s=10.0,
        forwarded=796_000.0,
        load_cpu_s=30.0,
        machine_cpu_s=36.0,
        loadavg=2.0,
        drops={"dropped_silence": 9800},
        probe_histogram={49: 100},
        probe_base_histogram={9: 100},
    )


def test_histogram_percentiles_are_nearest_rank_bucket_upper_edges() -> None:
    histogram = {0: 50, 99: 49, 1999: 1}  # 10 µs buckets: 0-10 µs, 990-1000 µs, 19.99-20 ms
    assert meetrows.percentile_ms(histogram, 50) == pytest.approx(0.01)
    assert meetrows.percentile_ms(histogram, 99) == pytest.approx(1.0)
    assert meetrows.percentile_ms(histogram, 100) == pytest.approx(20.0)
    assert meetrows.percentile_ms({}, 99) == 0.0


def test_meeting_row_is_path_minus_baseline_and_loss_of_copies_due() -> None:
    due = meetrows.expected_copies(4000, 200)
    assert due == 796_000
    m = _meeting({299: 99, 4999: 1}, {99: 99, 999: 1}, received=due - 796)
    row = meetrows.meeting_result(m)
    assert row.p50_us == pytest.approx(3000.0 - 1000.0)
    assert row.p99_us == pytest.approx(2000.0)  # the 99th of 100 is still 3 ms / 1 ms
    assert row.extra["loss_pct"] == pytest.approx(0.1)
    assert row.extra["datagrams_out_per_s"] == pytest.approx(39_800.0)
    assert row.extra["cpu_node"] == pytest.approx(0.5)
    assert row.extra["base_loss_pct"] == pytest.approx(1.0)
    probe = meetrows.probe_result(m)
    assert probe.p50_us == pytest.approx(400.0)  # 0.5 ms at the probe less its 0.1 ms base
    assert probe.p99_us == pytest.approx(400.0)
    forwarding = meetrows.forwarding_result(m)
    assert forwarding.ops_per_s == pytest.approx(79_600.0)  # 796,000 copies / 10 CPU-s


def test_merge_sums_answers_and_histograms() -> None:
    one = {"sent": {"0": 10}, "received": 5, "histogram": {"3": 2}, "base_sent": 1,
           "base_received": 1, "base_histogram": {"1": 1}, "cpu_s": 0.5}  # fmt: skip
    two = {**one, "sent": {"50": 7, "51": 1}, "histogram": {"3": 1, "4": 1}}
    merged = meetrows.merge([one, two])
    assert merged["sent"] == 18
    assert merged["received"] == 10
    assert merged["histogram"] == Counter({3: 3, 4: 1})
    assert merged["cpu_s"] == pytest.approx(1.0)


def test_join_time_runs_from_the_first_join_to_the_last_hearing() -> None:
    answers = [
        {"first_join": 100.0, "last_bound": 103.0, "last_hearing": 104.5},
        {"first_join": 100.2, "last_bound": 103.5, "last_hearing": 104.0},
    ]
    row = meetrows.join_result(200, answers)
    assert row.extra["seconds"] == pytest.approx(4.5)
    assert row.extra["last_bound_s"] == pytest.approx(3.5)


def test_speakers_listeners_and_the_probe_have_processes_of_their_own() -> None:
    assert meetings.shares(21, 2) == [11, 10]
    procs = meetings.layout(200, 4)
    assert procs[0] == (4, list(meetcore.SPEAKER_LEVELS))
    assert [n for n, _ in procs[1:]] == [49, 49, 49, 48, 1]
    assert all(levels == [] for _, levels in procs[1:])
    assert sum(n for n, _ in meetings.layout(20, 2)) == 20


def test_core_room_forwards_speakers_to_everyone_else() -> None:
    room = meetcore.room(20)
    voice = sum(1 for _, data in room.mix if (peek_route(data) or (0,) * 6)[5])
    assert voice == 4 * meetcore.SILENT_EVERY
    assert meetcore.copies_per_pass(room) == voice * (20 - 1)
    row = meetcore.run_core(quick=True)
    assert row.ops_per_s > 0
    assert row.extra["copies_per_decision"] > 1


def test_probe_stamp_follows_the_header() -> None:
    data = meetload.datagram(0xABCDEF, 7, 70_000, 25)
    route = peek_route(data)
    assert route is not None
    assert (route[0], route[4], route[5]) == (0xABCDEF, 25, True)
    _at, speaker, seq, sealed = meetload.STAMP.unpack_from(data, HEADER_SIZE)
    assert (speaker, seq, sealed) == (7, 70_000, 0)
    silent = peek_route(meetload.datagram(1, 8, 0, None))
    assert silent is not None
    assert not silent[5]


@pytest.mark.long  # about 50 s of node and load processes
def test_quick_meetings_run_writes_every_case(tmp_path: Path) -> None:
    assert main(["meetings", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "meetings.json").read_text(encoding="utf-8"))["results"]
    by_name = {row["name"]: row for row in rows}
    n = meetings.QUICK.participants
    meeting = by_name[f"meeting, {n} participants, 4 speakers"]
    assert meeting["extra"]["expected"] > 0
    assert by_name[f"forwarding, node process, {n} participants"]["ops_per_s"] > 0
    assert by_name["relay-added latency, probe participant"]["calls"] > 0
    assert by_name[f"join, {n} participants"]["extra"]["seconds"] > 0
    assert any(row["group"] == "profile" for row in rows)
    anchor, member = meetlink.DOMAINS[:2]
    for name in (f"{anchor} -> {member}", f"{member} -> {anchor}"):
        link = by_name[f"{meetlink.NAME}: {name}"]["extra"]
        assert link["link_bytes"] > 0
        assert 0.8 < link["link_per_participant"] < 1.2
    rekey = by_name[f"rekey after a leave, {n} participants"]
    assert rekey["samples"] > 0
    assert rekey["extra"]["leaver_opened"] == 0
    assert rekey["extra"]["decrypt_failures"] == 0
    assert by_name["rekey after 3 leaves within 200 ms"]["extra"]["leaver_refused"] > 0
    assert by_name["trace: send -> copy out of node"]["calls"] > 0


def test_cascade_split_hosts_half_at_the_anchor() -> None:
    assert meetlink.split(60) == [30, 15, 15]
    assert meetlink.split(13) == [7, 3, 3]
    assert sum(meetlink.split(201)) == 201


def test_load_counts_bytes_per_speaker_and_most_one_participant_heard() -> None:
    heard = Counter({(10, 0): 300, (11, 0): 280, (10, 1): 50})
    assert meetload.heard_from(heard) == {"0": [580, 300], "1": [50, 50]}
    assert meetlink.far_consumption({"0": [580, 300], "1": [50, 50]}, [0, 1, 7]) == (630, 350)


def _side(domain: str, n: int, speakers: tuple[int, ...], heard: dict[str, list[int]],
          link: dict[str, float]) -> meetlink.Side:  # fmt: skip
    return meetlink.Side(domain, n, speakers, heard, link, cpu_s=1.0, link_seconds=4.0)


def test_link_rows_compare_each_direction_with_the_far_side() -> None:
    zero = dict.fromkeys(("bytes_in", "bytes_out", "datagrams_in", "datagrams_out"), 0.0)
    anchor = _side("a", 4, (0,), {"1": [4000, 1000]}, {**zero, "bytes_out": 2000})
    member = _side(
        "b", 3, (1,), {"0": [3000, 1000]},
        {"bytes_in": 1000, "bytes_out": 1000, "datagrams_in": 10, "datagrams_out": 10},
    )  # fmt: skip
    down, up = meetlink.link_results([anchor, member], seconds=4.0, loadavg=1.5)
    assert down.name == f"{meetlink.NAME}: a -> b"
    assert down.ops_per_s == 250
    assert down.extra["far_received_bytes"] == 3000
    assert down.extra["link_per_participant"] == 1.0
    assert down.extra["received_per_link"] == 3.0
    assert up.name == f"{meetlink.NAME}: b -> a"
    assert (up.extra["far_participants"], up.extra["received_per_link"]) == (4, 4.0)
