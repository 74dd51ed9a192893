"""Meetings (issue 18, "Done when", ``make bench meetings``): one real ``sealrelay node
serve`` process with ``udp_listen`` set, and a meeting of :data:`PARTICIPANTS` simulated
participants (``benchmarks.meetload``: raw protocol participants, ``MeetingJoin`` on
``/v1/client`` and a QUIC ``MediaBind`` each, audio only) in separate load processes: the
four speakers in one, the silent listeners shared by :data:`LOAD_PROCS`, and one *probe*
participant (silent) alone in the last. ``make bench meetings`` runs this module alone;
``--quick``: :data:`QUICK_PARTICIPANTS` for :data:`QUICK_SECONDS`;
``SEALRELAY_BENCH_MEETING_PARTICIPANTS=N``: a meeting of ``N`` instead.

Cases:

- ``forwarding core, 200 participants, 4 speakers``: ``node.sfu.Sfu.on_datagram`` alone
  over the meeting's mix of real headers (``benchmarks.meetcore``): ``mean µs`` per
  decision, ``ops/s`` decisions per CPU-second, ``copies_per_cpu_s`` the copies it
  decides per CPU-second.
- ``join, N participants``: every load process joins its participants at once (at most
  ``meetload.JOIN_CONCURRENCY`` joins in flight each); the speakers talk from their bind
  on. ``mean µs`` (and ``seconds``): from the first ``MeetingJoin`` of any process to the
  moment the last participant has heard every speaker but itself (``CLOCK_MONOTONIC``, one
  clock for every process); ``last_bound_s`` to the last ``MediaBound``. Target: under
  10 s. It includes the first speaker recompute (every 300 ms).
- ``meeting, N participants, 4 speakers``: a window of ``SECONDS`` that starts 1 s after
  the join. ``datagrams_out_per_s``: the node's ``sealrelay_meeting_forwarded_datagrams_total``
  delta over the window. ``loss_pct``: the copies due (each speaker datagram sent in the
  window, times N - 1 receivers) that never arrived (``expected``). Latency: each payload
  starts with its send time (``time.monotonic_ns`` in the sender's load process); a
  receiver subtracts it from its own reading when ``receive_datagram_batch`` returns it
  (``path_p50_ms``/``path_p99_ms``, 10 µs buckets). Baseline: during the same window
  each load process also sends a speaker's stream to itself over a loopback QUIC
  connection with no node (``base_p50_ms``/``base_p99_ms``): the QUIC stacks and a busy
  load process's scheduling. ``p50``/``p99`` (µs) are path minus baseline at the same
  percentile, over every receiver (a listeners' process receives about 10,000 datagrams
  a second and may fall behind). ``cpu_node``: node CPU (``/proc/PID/stat`` user +
  system) per wall second, target under 1.2 cores; ``cpu_load`` the load processes',
  ``cpu_machine`` the whole machine's. Where datagrams went: the node's drops by reason
  (``dropped_<reason>``; ``silence`` is expected, ``not_selected`` means a speaker was
  deselected), the kernel's drops on the node's and load processes' UDP sockets
  (``node_socket_drops``, ``load_socket_drops``), machine-wide ``udp_buffer_errors``; and
  who was behind: the peak bytes queued on the UDP sockets of the node, the speakers',
  listeners' and probe process, read every 0.1 s (``*_rx_queue_max``).
- ``relay-added latency, probe participant``: the same, at the probe alone (a process with
  one receiver, not behind): path minus its own baseline. Target: p99 under 50 ms.
- ``forwarding, node process, N participants``: ``ops/s`` is that window's forwarded
  copies per CPU-second of the node process. Target: at least 30,000.
- ``trace: ...`` (``benchmarks.meettrace``): a further window of :data:`TRACE_SECONDS` with
  the node's timing hooks on (``benchmarks.nodetrace``; the node runs under it from its
  start): each datagram's delay from its send time to the node's ``forward``, to each copy
  leaving the node, to the receivers and to the probe, with how long the node's and the
  load processes' main threads waited for a core (``/proc/PID/schedstat``), the machine's
  CPU pressure, the congestion state of the QUIC connections, and a ``note`` that says
  where the relay-added latency came from.
- ``profile ...``: a last window of 5 s with the node under ``cProfile``
  (``benchmarks.profiled``: the profiler is on only in this window): the functions with the
  most own time, ``mean µs`` their own CPU per forwarded copy, ``share_pct`` of all
  profiled time, ``cum_pct`` with what they call.
- ``leader's epoch, 199 pairwise messages`` (``benchmarks.meetpairwise``): the key
  leader's new epoch sealed for each participant with the client's session code, on its own
  (the rekey rows below do not encrypt their key messages).
- ``rekey, key schedule alone`` (``benchmarks.meetschedule``): the client's key schedule
  for 200 participants in one process, no media: its own cost on one core.
- ``rekey after a leave, N participants`` and ``rekey after 3 leaves within 200 ms``
  (``benchmarks.meetrekey``; after the profile window): every simulated participant runs
  the client's key schedule and SFrame keys (``benchmarks.meetkeys``), the speakers' frames
  are SFrame-encrypted and go through the node; key messages travel in-process between the
  participants of one load process and over a local Unix socket between load processes
  (``key_transport``). Epoch 0 for everyone, then 5 single leaves and a batch of 3 removals
  80 ms apart, each after the last one settled: the time from the removal until each
  remaining participant sends under the new epoch and has opened a frame under it from
  every remaining speaker; a removed participant stays connected and must open nothing
  under the new epochs (``leaver_opened``). Target p99 under 1.5 s.
- ``bytes on each inter-node link: A -> B`` (``benchmarks.meetlink``; after the one-node
  rows): a meeting cascaded over three node processes of three domains, one row per link
  and direction: the link's bytes against what the far side's participants received of
  the streams from across it (one copy per domain: ``link_per_participant`` about 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import httpx
import trio

from benchmarks.calls import (
    _answers,
    _metric,
    _socket_drops,
    _stop,
    _udp_buffer_errors,
    _wait_for,
)
from benchmarks.federation import Node, _final_line, _free_ports, _machine_cpu_s
from benchmarks.harness import Result
from benchmarks.meetcore import SPEAKER_LEVELS, run_core
from benchmarks.meetlink import MeetLoad, run_links
from benchmarks.meetpairwise import run_pairwise
from benchmarks.meetrekey import (
    BATCH_GAP,
    SETTLED_WAIT,
    SPACING,
    Leave,
    leader_costs,
    leavers,
    merge_records,
    rekey_note,
    rekey_row,
)
from benchmarks.meetrows import (
    Meeting,
    forwarding_result,
    join_result,
    meeting_result,
    merge,
    probe_result,
)
from benchmarks.meetschedule import run_schedule
from benchmarks.meettrace import cpu_pressure, sched_shares, schedstat, trace_results
from benchmarks.node import NODE_ENV, _cpu_s, _invites
from benchmarks.nodetrace import START, STOP, window_path
from benchmarks.profiled import profile_results

PARTICIPANTS: Final = 200
LOAD_PROCS: Final = 4
SECONDS: Final = 20.0
QUICK_PARTICIPANTS: Final = 20
QUICK_PROCS: Final = 2
QUICK_SECONDS: Final = 3.0
PROBES: Final = 1
"""Participants of the probe process (module docstring), counted in the meeting's."""

PARTICIPANTS_ENV: Final = "SEALRELAY_BENCH_MEETING_PARTICIPANTS"
"""Set: the meeting has this many participants instead (at least 6; e.g. to see how a
figure grows with the meeting)."""
PROFILE_SECONDS: Final = 5.0
"""Seconds of the profiled window (after the measured one)."""
TRACE_SECONDS: Final = 5.0
"""Seconds of the trace window (``benchmarks.meettrace``; after the measured one)."""
NODETRACE: Final = "benchmarks.nodetrace"
QUEUE_SAMPLE: Final = 0.1
"""Seconds between two readings of the UDP receive queues in the window."""
SETTLE: Final = 1.0
"""Seconds between the join and the measured window."""
DOMAIN: Final = "meet.localhost"
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
SUITE: Final = "cnsa2"
DRAIN: Final = 1.0
"""``benchmarks.meetload.DRAIN``: seconds the load processes count after a window."""
FORWARDED: Final = "sealrelay_meeting_forwarded_datagrams_total"
DROPPED: Final = "sealrelay_meeting_dropped_total"
DROP_REASONS: Final = ("silence", "not_selected", "stream_not_bound", "send_failed", "no_room")
LOG_TAIL: Final = 40
KEY_TRANSPORT: Final = (
    "key messages in-process between the participants of a load process, over a local Unix "
    "socket between load processes; not pairwise-encrypted (see the leader's epoch row)"
)


@dataclass(frozen=True)
class Plan:
    participants: int
    procs: int
    seconds: float


FULL: Final = Plan(PARTICIPANTS, LOAD_PROCS, SECONDS)
QUICK: Final = Plan(QUICK_PARTICIPANTS, QUICK_PROCS, QUICK_SECONDS)


def shares(participants: int, procs: int) -> list[int]:
    """Participants per load process, as even as can be."""
    return [participants // procs + (i < participants % procs) for i in range(procs)]


def layout(participants: int, procs: int) -> list[tuple[int, list[int]]]:
    """(participants, speakers' levels) of each load process: the speakers' process first,
    then ``procs`` listeners' processes, then the probe process."""
    speakers = len(SPEAKER_LEVELS)
    listeners = shares(participants - speakers - PROBES, procs)
    return [(speakers, list(SPEAKER_LEVELS)), *((n, []) for n in listeners), (PROBES, [])]


def _ask(loads: list[MeetLoad], command: str) -> list[dict[str, Any]]:
    for load in loads:
        load.send(command)
    return _answers(loads)


def _specs(tmp: Path, node: Node, plan: Plan) -> list[Path]:
    """The load processes' specs; the last is the probe process (one silent participant)."""
    procs = layout(plan.participants, plan.procs)
    counts = [count for count, _ in procs]
    invites = trio.run(_invites, node.data, [f"m{i}" for i in range(len(procs))])
    room, meeting = os.urandom(16).hex(), os.urandom(16).hex()
    names = [invite.split("=", 1)[0] for invite in invites]
    owners = [
        [sum(counts[:i]), count, f"{name}@{node.domain}"]
        for i, (name, count) in enumerate(zip(names, counts, strict=True))
    ]
    paths = []
    for i, (invite, (count, levels)) in enumerate(zip(invites, procs, strict=True)):
        name, code = invite.split("=", 1)
        doc = {
            "meeting": meeting,
            "bus": {"dir": str(tmp), "index": i, "owners": owners},
            "suite": SUITE,
            "account": {"address": f"{name}@{node.domain}", "url": node.url, "code": code},
            "room": room,
            "participants": count,
            "speakers": levels,
            "first": sum(counts[:i]),
        }
        path = tmp / f"meet{i}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        paths.append(path)
    return paths


def rx_queued(pids: list[int]) -> int:
    """Bytes waiting now in the receive queues of the UDP sockets of processes ``pids``
    (``/proc/net/udp``, ``rx_queue``): how far behind their readers are."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    rows = (line.split() for line in Path("/proc/net/udp").read_text().splitlines()[1:])
    return sum(int(r[4].split(":")[1], 16) for r in rows if len(r) > 9 and r[9] in inodes)


def _counters(node: Node) -> dict[str, float]:
    text = httpx.get(node.url + "/metrics", timeout=10).text
    found = {"forwarded": _metric(text, FORWARDED)}
    for reason in DROP_REASONS:
        found[f"dropped_{reason}"] = _metric(text, rf'{DROPPED}{{reason="{reason}"}}')
    return found


def run(quick: bool) -> list[Result]:
    plan = QUICK if quick else FULL
    if os.environ.get(PARTICIPANTS_ENV):
        plan = Plan(int(os.environ[PARTICIPANTS_ENV]), plan.procs, plan.seconds)
    results = [run_core(quick), run_pairwise(quick), run_schedule(quick)]
    with tempfile.TemporaryDirectory(prefix="sealrelay-bench-meetings-") as tmp:
        log_path = Path(tmp) / "node.log"
        try:
            with log_path.open("w", encoding="utf-8") as log:
                results += _run(Path(tmp), plan, log)
        except BaseException:
            tail = log_path.read_text(encoding="utf-8").splitlines()[-LOG_TAIL:]
            print("\n".join(["node's and load processes' stderr, last lines:", *tail]),
                  file=sys.stderr)  # fmt: skip
            raise
        link_log = Path(tmp) / "links.log"
        try:
            with link_log.open("w", encoding="utf-8") as log:
                results += run_links(quick, Path(tmp) / "links", log)
        except BaseException:
            tail = link_log.read_text(encoding="utf-8").splitlines()[-LOG_TAIL:]
            print("\n".join(["cascade nodes' and load processes' stderr, last lines:", *tail]),
                  file=sys.stderr)  # fmt: skip
            raise
    return results


def _run(tmp: Path, plan: Plan, log: IO[str]) -> list[Result]:
    from node.devfed import prepare

    (setup,) = prepare(tmp / "fed", (DOMAIN,), _free_ports(1), suite=SUITE, extra=EXTRA)
    node = Node(setup.domain, setup.port, setup.data_dir, setup.config, log)
    specs = _specs(tmp, node, plan)
    loads: list[MeetLoad] = []
    try:
        _start_traced(node, tmp / "node.trace", tmp / "node.prof")  # hooks off until asked
        loads = [MeetLoad(spec, log) for spec in specs]
        for load in loads:
            load.ready()
        joined = _ask(loads, f"join {len(SPEAKER_LEVELS)}")
        results = [join_result(plan.participants, joined)]
        meeting = _measure(loads, node, plan)
        results += [meeting_result(meeting), probe_result(meeting), forwarding_result(meeting)]
        results += _trace(loads, node, plan, tmp / "node.trace")
        results += _profile(loads, node, plan, tmp / "node.prof")
        results += _rekey(loads, node, plan)
        _ask(loads, "leave")
        return results
    finally:
        for load in loads:
            load.close()
        _stop(node)


def _measure(loads: list[MeetLoad], node: Node, plan: Plan) -> Meeting:
    t0 = time.monotonic() + SETTLE
    for load in loads:
        load.send(f"measure {t0} {plan.seconds}")
    time.sleep(max(0.0, t0 - time.monotonic()))
    pids = [load.proc.pid for load in loads]

    def sample() -> tuple[float, dict[str, float], float]:
        found = _counters(node)
        found["node_socket_drops"] = _socket_drops([node.pid])
        found["load_socket_drops"] = _socket_drops(pids)
        found["udp_buffer_errors"] = _udp_buffer_errors()
        return _cpu_s(node.pid), found, _machine_cpu_s()

    before = sample()
    queued = {"node_rx_queue_max": [node.pid], "speakers_rx_queue_max": pids[:1],
              "listeners_rx_queue_max": pids[1:-1], "probe_rx_queue_max": pids[-1:]}  # fmt: skip
    peaks = dict.fromkeys(queued, 0)
    while (left := t0 + plan.seconds - time.monotonic()) > 0:
        for key, which in queued.items():
            peaks[key] = max(peaks[key], rx_queued(which))
        time.sleep(min(QUEUE_SAMPLE, left))
    after = sample()
    answers = _answers(loads)
    merged, probe = merge(answers), answers[-1]
    counted = {k: after[1][k] - before[1][k] for k in after[1]}
    forwarded = counted.pop("forwarded")
    return Meeting(
        participants=plan.participants,
        speakers=len(SPEAKER_LEVELS),
        seconds=plan.seconds,
        sent=merged["sent"],
        received=merged["received"],
        histogram=merged["histogram"],
        base_sent=merged["base_sent"],
        base_received=merged["base_received"],
        base_histogram=merged["base_histogram"],
        node_cpu_s=after[0] - before[0],
        forwarded=forwarded,
        load_cpu_s=merged["cpu_s"],
        machine_cpu_s=after[2] - before[2],
        loadavg=os.getloadavg()[0],
        drops={**counted, **peaks},
        probe_histogram=Counter({int(k): v for k, v in probe["histogram"].items()}),
        probe_base_histogram=Counter({int(k): v for k, v in probe["base_histogram"].items()}),
    )


def _profile(loads: list[MeetLoad], node: Node, plan: Plan, out: Path) -> list[Result]:
    """A last window of :data:`PROFILE_SECONDS` with the node under ``cProfile``
    (``benchmarks.profiled``, started at the node's start, on only now): its top
    functions, ``mean µs`` per forwarded copy."""
    seconds = min(PROFILE_SECONDS, plan.seconds)
    t0 = time.monotonic() + SETTLE
    for load in loads:
        load.send(f"measure {t0} {seconds}")
    time.sleep(max(0.0, t0 - time.monotonic()))
    forwarded = _counters(node)["forwarded"]
    os.kill(node.pid, signal.SIGUSR1)
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    os.kill(node.pid, signal.SIGUSR2)
    forwarded = _counters(node)["forwarded"] - forwarded
    _answers(loads)
    _wait_for(out)
    return profile_results(out, forwarded)


def _start_traced(node: Node, trace: Path, profile: Path) -> None:
    """Start ``node`` under ``benchmarks.nodetrace`` (its timing hooks between
    :data:`~benchmarks.nodetrace.START` and ``STOP``, written to ``trace``; a profile
    between SIGUSR1 and SIGUSR2, written to ``profile``)."""
    import subprocess

    node.proc = subprocess.Popen(
        [sys.executable, "-m", NODETRACE, str(trace), str(profile), "sealrelay", "node", "serve",
         "--domain", node.domain, "--listen", f"127.0.0.1:{node.port}", "--data", str(node.data),
         "--config", str(node.config)],
        stdout=subprocess.PIPE, stderr=node.log, text=True, env={**os.environ, **NODE_ENV},
    )  # fmt: skip
    _final_line(node.proc.stdout, f"node {node.domain}", "url")


def _trace(loads: list[MeetLoad], node: Node, plan: Plan, out: Path) -> list[Result]:
    """A window of :data:`TRACE_SECONDS` with the node's timing hooks on and the load
    processes measuring: ``benchmarks.meettrace``'s rows."""
    seconds = min(TRACE_SECONDS, plan.seconds)
    t0 = time.monotonic() + SETTLE
    for load in loads:
        load.send(f"measure {t0} {seconds}")
    window_path(out).write_text(f"{int(t0 * 1e9)} {int((t0 + seconds) * 1e9)}", encoding="utf-8")
    time.sleep(max(0.0, t0 - time.monotonic()))
    cpu, machine = _cpu_s(node.pid), _machine_cpu_s()
    whose = {"node": [node.pid], "load": [load.proc.pid for load in loads]}
    before = {who: schedstat(pids) for who, pids in whose.items()}
    os.kill(node.pid, START)
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    sched = sched_shares(before, {who: schedstat(pids) for who, pids in whose.items()}, seconds)
    sched["cpu_pressure_pct"] = cpu_pressure()
    used = {
        "cpu_node": round((_cpu_s(node.pid) - cpu) / seconds, 3),
        "cpu_machine": round((_machine_cpu_s() - machine) / seconds, 3),
    }
    time.sleep(DRAIN)  # late copies of the window's datagrams still count, as at receivers
    os.kill(node.pid, STOP)
    answers = _answers(loads)
    _wait_for(out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    return trace_results(doc, merge(answers), answers[0], answers[-1], os.getloadavg(), used, sched)


def _rekey(loads: list[MeetLoad], node: Node, plan: Plan) -> list[Result]:
    """Epoch 0 for everyone, then :data:`~benchmarks.meetrekey.SINGLES` single leaves and a
    batch, :data:`~benchmarks.meetrekey.SPACING` s apart (``benchmarks.meetrekey``)."""
    whose = {"node": [node.pid], "load": [load.proc.pid for load in loads]}
    sched = {who: schedstat(pids) for who, pids in whose.items()}
    started = time.monotonic()
    keyed = _ask(loads, "keys")
    start_s = max(answer["at"] for answer in keyed) - started
    time.sleep(SETTLE)
    singles, batch = leavers(plan.participants, len(SPEAKER_LEVELS), PROBES)
    leaves: list[Leave] = []
    for pids, gap in [*(([p], 0.0) for p in singles), (batch, BATCH_GAP)]:
        loads[0].send(f"remove {','.join(map(str, pids))} {gap}")  # the key leader's process
        (answer,) = _answers([loads[0]])
        leaves.append(Leave(answer["at"], tuple(answer["pids"]), answer["epoch"]))
        gone = ",".join(str(p) for leave in leaves for p in leave.pids)
        _ask(loads, f"settled {answer['epoch']} {len(SPEAKER_LEVELS)} {gone} {SETTLED_WAIT}")
        time.sleep(max(0.0, answer["at"] + SPACING - time.monotonic()))
    merged = merge_records(_ask(loads, "keys_report"))
    after = {who: schedstat(pids) for who, pids in whose.items()}
    shares = sched_shares(sched, after, time.monotonic() - started)
    shares["cpu_pressure_pct"] = cpu_pressure()
    extra = {
        **shares,
        "start_epoch_s": round(start_s, 3),
        "decrypt_failures": merged["failures"],
        "key_messages_refused": merged["rejected"],
        "loadavg": "/".join(f"{x:.2f}" for x in os.getloadavg()),
        "key_transport": KEY_TRANSPORT,
        "note": rekey_note(shares),
    }
    everyone, speakers = range(plan.participants), range(len(SPEAKER_LEVELS))
    rows = []
    for name, chosen in (
        (f"rekey after a leave, {plan.participants} participants", leaves[:-1]),
        (f"rekey after {len(batch)} leaves within 200 ms", leaves[-1:]),
    ):
        costs = leader_costs(chosen, merged["epochs_sent"])
        rows.append(rekey_row(name, chosen, leaves, everyone, speakers, merged, {**costs, **extra}))
    return rows
