"""Bytes on each inter-node link of a cascaded meeting (issue 18, "Done when": "bytes on
each inter-node link against what the far side's participants consume"; ``make bench
meetings``, after the one-node rows).

Three real ``sealrelay node serve`` processes of three domains (:data:`DOMAINS`, laid out
and pinned to each other by ``node.devfed.prepare``, ``udp_listen`` set); the first is the
meeting's anchor (the host's node). One ``benchmarks.meetload`` process per domain: its
participants (raw protocol participants, audio only) connect only to their own node and
join the anchor's room with ``MeetingJoinAt``; the anchor's domain hosts half of them
(:func:`split`), the four speakers are spread over the domains (:data:`SPEAKERS_AT`);
one of them (in the first member domain) also sends one simulcast layer of video, which a
third of each domain's participants ask for (``benchmarks.meetlinkload``).
Each member node holds one media link to the anchor. Over a window of ``seconds`` (1 s
after everyone hears every speaker) the member nodes' ``/metrics`` give each link's
traffic in both directions (``sealrelay_meeting_link_bytes_total{direction}`` and
``..._datagrams_total``: ``in`` on a member node is anchor -> member, ``out`` member ->
anchor), and the load processes count the bytes their participants received per speaker
(sent in the window).

One row per link and direction, ``bytes on each inter-node link: A -> B``: ``ops/s`` link
bytes per second (over the span of the two ``/metrics`` readings, ``link_seconds``);
``link_bytes``/``link_datagrams``; ``senders`` whose streams cross it;
``far_participants`` on B's side; ``far_received_bytes``: what B's participants received
of the streams that come from across that link, audio and video (anchor -> member: the
senders of the anchor's and the other member's domain; member -> anchor: the member's
senders, at the anchor's own participants); ``one_participant_bytes``: per such sender the
most one of them received, summed; ``link_per_participant``: the link's bytes per second
over one participant's (one copy per domain: about 1, not ``far_participants``);
``received_per_link``: the far side's bytes per second over the link's (about how many
participants there consume each stream). The anchor's own counters cross-check the
members' (``anchor_out_bytes`` = the sum of the members' ``in``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import httpx
import trio

from benchmarks.calls import Load, _answers, _metric, _stop
from benchmarks.federation import Node, _free_ports
from benchmarks.harness import Result
from benchmarks.meetcore import SPEAKER_LEVELS
from benchmarks.node import NODE_ENV, _cpu_s, _invites

GROUP: Final = "meetings"
NAME: Final = "bytes on each inter-node link"
DOMAINS: Final = ("alpha.localhost", "bravo.localhost", "charlie.localhost")
"""The anchor first, then the member domains."""
SPEAKERS_AT: Final = ((0,), (1, 3), (2,))
"""Per domain of :data:`DOMAINS`, which of :data:`~benchmarks.meetcore.SPEAKER_LEVELS`
speak there."""
VIDEO_DOMAIN: Final = 1
"""The first participant (a speaker) of this domain of :data:`DOMAINS` also sends video."""
WATCH_SHARE: Final = 3
"""One participant in this many of each domain watches one video (the last ones)."""
PARTICIPANTS: Final = 120
SECONDS: Final = 15.0
QUICK_PARTICIPANTS: Final = 12
QUICK_SECONDS: Final = 3.0
SETTLE: Final = 1.0
"""Seconds between the join and the window."""
EXTRA: Final = 'udp_listen = "127.0.0.1:0"'
SUITE: Final = "cnsa2"
LOAD: Final = "benchmarks.meetload"
LINK_BYTES: Final = "sealrelay_meeting_link_bytes_total"
LINK_DATAGRAMS: Final = "sealrelay_meeting_link_datagrams_total"
DIRECTIONS: Final = ("in", "out")


@dataclass(frozen=True)
class Side:
    """One domain of the cascade in the window."""

    domain: str
    participants: int
    speakers: tuple[int, ...]
    """Global participant indices of its speakers (``benchmarks.meetload`` stamps)."""
    heard: Mapping[str, Sequence[int]]
    """Its load process's ``from``: ``{speaker: [bytes, most one participant got]}``."""
    link: Mapping[str, float]
    """Its link counters' deltas: ``bytes_in``, ``bytes_out``, ``datagrams_in``..."""
    cpu_s: float
    link_seconds: float
    """How long apart its two ``/metrics`` readings were (the load processes count by send
    time over exactly the window; the readings may start late on a busy machine)."""


def split(participants: int, domains: int = len(DOMAINS)) -> list[int]:
    """Participants per domain: the anchor's domain hosts half (rounded up), the member
    domains share the rest as evenly as can be."""
    members = domains - 1
    rest = participants // 2
    return [participants - rest, *(rest // members + (i < rest % members) for i in range(members))]


def far_consumption(heard: Mapping[str, Sequence[int]], speakers: Sequence[int]) -> tuple[int, int]:
    """(bytes the far side's participants received of ``speakers``' streams, the most one
    participant received of each, summed)."""
    found = [heard.get(str(s), (0, 0)) for s in speakers]
    return sum(f[0] for f in found), sum(f[1] for f in found)


def link_results(sides: Sequence[Side], seconds: float, loadavg: float) -> list[Result]:
    """Two rows per member side (anchor -> member, member -> anchor); ``sides[0]`` is the
    anchor's."""
    anchor, *members = sides
    rows = []
    for member in members:
        others = [s for side in sides if side is not member for s in side.speakers]
        for far, direction, streams in ((member, "in", others), (anchor, "out", member.speakers)):
            near = anchor if far is member else member
            consumed, one = far_consumption(far.heard, streams)
            link = member.link[f"bytes_{direction}"]
            link_rate = link / max(member.link_seconds, 1e-9)
            one_rate = one / max(seconds, 1e-9)
            datagrams = member.link[f"datagrams_{direction}"]
            rows.append(
                Result(
                    group=GROUP,
                    name=f"{NAME}: {near.domain} -> {far.domain}",
                    ops_per_s=link_rate,
                    mean_us=0.0,
                    p50_us=None,
                    p99_us=None,
                    calls=int(datagrams),
                    samples=1,
                    batch=int(datagrams),
                    extra={
                        "link_bytes": int(link),
                        "link_datagrams": int(datagrams),
                        "senders": len(streams),
                        "far_participants": far.participants,
                        "far_received_bytes": consumed,
                        "one_participant_bytes": one,
                        "link_per_participant": round(link_rate / max(one_rate, 1e-9), 3),
                        "received_per_link": round(
                            consumed / max(seconds, 1e-9) / max(link_rate, 1e-9), 2
                        ),
                        "anchor_out_bytes": int(anchor.link["bytes_out"]),
                        "anchor_in_bytes": int(anchor.link["bytes_in"]),
                        "cpu_near": round(near.cpu_s / max(seconds, 1e-9), 3),
                        "cpu_far": round(far.cpu_s / max(seconds, 1e-9), 3),
                        "seconds": seconds,
                        "link_seconds": round(member.link_seconds, 3),
                        "loadavg_1m": round(loadavg, 2),
                    },
                )
            )
    return rows


def link_counters(text: str) -> dict[str, float]:
    """A node's link counters (``bytes_in``...) from its ``/metrics`` text."""
    found = {}
    for direction in DIRECTIONS:
        for key, name in (("bytes", LINK_BYTES), ("datagrams", LINK_DATAGRAMS)):
            found[f"{key}_{direction}"] = _metric(text, rf'{name}{{direction="{direction}"}}')
    return found


class MeetLoad(Load):
    """One ``benchmarks.meetload`` process over its spec file."""

    def __init__(self, spec: Path, log: IO[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", LOAD, str(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            env={**os.environ, **NODE_ENV},
        )  # fmt: skip


def _specs(tmp: Path, nodes: Sequence[Node], counts: Sequence[int]) -> list[Path]:
    invites = [trio.run(_invites, node.data, [f"l{i}"])[0] for i, node in enumerate(nodes)]
    room, meeting = os.urandom(16).hex(), os.urandom(16).hex()
    firsts = [sum(counts[:i]) for i in range(len(counts))]
    names = [invite.split("=", 1)[0] for invite in invites]
    owners = [
        [first, count, f"{name}@{node.domain}"]
        for first, count, name, node in zip(firsts, counts, names, nodes, strict=True)
    ]
    paths = []
    for i, (node, invite) in enumerate(zip(nodes, invites, strict=True)):
        name, code = invite.split("=", 1)
        doc = {
            "meeting": meeting,
            "bus": {"dir": str(tmp), "index": i, "owners": owners},
            "suite": SUITE,
            "account": {"address": f"{name}@{node.domain}", "url": node.url, "code": code},
            "room": room,
            "anchor": nodes[0].domain,
            "participants": counts[i],
            "speakers": [SPEAKER_LEVELS[k] for k in SPEAKERS_AT[i]],
            "first": firsts[i],
            "video": firsts[VIDEO_DOMAIN],
            "watchers": counts[i] // WATCH_SHARE,
        }
        path = tmp / f"link{i}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        paths.append(path)
    return paths


def _sample(nodes: Sequence[Node]) -> list[tuple[dict[str, float], float, float]]:
    """Per node: its link counters, CPU seconds, and when (the middle of the reading)."""
    found = []
    for node in nodes:
        start = time.monotonic()
        text = httpx.get(node.url + "/metrics", timeout=10).text
        found.append((link_counters(text), _cpu_s(node.pid), (start + time.monotonic()) / 2))
    return found


def run_links(quick: bool, tmp: Path, log: IO[str]) -> list[Result]:
    """The cascade run (module docstring) in ``tmp``; stderr of every process to ``log``."""
    from node.devfed import prepare

    participants, seconds = (
        (QUICK_PARTICIPANTS, QUICK_SECONDS) if quick else (PARTICIPANTS, SECONDS)
    )
    tmp.mkdir(parents=True, exist_ok=True)
    counts = split(participants)
    setups = prepare(tmp / "fed", DOMAINS, _free_ports(len(DOMAINS)), suite=SUITE, extra=EXTRA)
    nodes = [Node(s.domain, s.port, s.data_dir, s.config, log) for s in setups]
    specs = _specs(tmp, nodes, counts)
    loads: list[MeetLoad] = []
    try:
        for node in nodes:
            node.start()
        loads = [MeetLoad(spec, log) for spec in specs]
        for load in loads:
            load.ready()
        for load in loads:  # the anchor's first; the others retry until its room exists
            load.send(f"join {len(SPEAKER_LEVELS)}")
        _answers(loads)
        t0 = time.monotonic() + SETTLE
        for load in loads:
            load.send(f"measure {t0} {seconds}")
        time.sleep(max(0.0, t0 - time.monotonic()))
        before = _sample(nodes)
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        after = _sample(nodes)
        answers = _answers(loads)
        for load in loads:
            load.send("leave")
        _answers(loads)
    finally:
        for load in loads:
            load.close()
        for node in nodes:
            _stop(node)
    firsts = [sum(counts[:i]) for i in range(len(counts))]
    sides = [
        Side(
            domain=node.domain,
            participants=count,
            speakers=tuple(first + k for k in range(len(SPEAKERS_AT[i]))),
            heard=answer["from"],
            link={k: after[i][0][k] - before[i][0][k] for k in after[i][0]},
            cpu_s=after[i][1] - before[i][1],
            link_seconds=after[i][2] - before[i][2],
        )
        for i, (node, count, first, answer) in enumerate(
            zip(nodes, counts, firsts, answers, strict=True)
        )
    ]
    return link_results(sides, seconds, os.getloadavg()[0])
