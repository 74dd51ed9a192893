"""Invariants of the forwarding core under any sequence of joins, leaves, requests, media
and ticks (hypothesis, bounded)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.sfu import AUDIO_STREAMS, Sfu, VideoRequest
from tests.node.sfu.kit import T0, audio, conn, video

SENDERS = range(1, 7)
ops = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(SENDERS)),
    st.tuples(st.just("leave"), st.sampled_from(SENDERS)),
    st.tuples(st.just("request"), st.sampled_from(SENDERS), st.integers(0, 4), st.integers(0, 800)),
    st.tuples(st.just("audio"), st.sampled_from(SENDERS), st.integers(0, 127)),
    st.tuples(st.just("video"), st.sampled_from(SENDERS), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("tick"), st.integers(0, 400)),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(ops, max_size=80))
def test_forwarding_invariants(script: list[tuple[object, ...]]) -> None:
    sfu, now, joined = Sfu(T0), T0, set()
    for op in script:
        match op:
            case ("join", int(s)) if s not in joined:
                sfu.join(conn(s), s)
                joined.add(s)
            case ("leave", int(s)):
                sfu.leave(conn(s))
                joined.discard(s)
            case ("request", int(s), int(n), int(h)) if s in joined:
                sfu.request(conn(s), VideoRequest(n, h))
            case ("audio", int(s), int(level)):
                dests = sfu.on_datagram(conn(s), audio(s, level))
                assert conn(s) not in dests
                assert (not dests) or s in joined
                for d in dests:
                    assert s in sfu.receiving(d)[0]
            case ("video", int(s), int(layer), bool(key)):
                dests = sfu.on_datagram(conn(s), video(s, layer, keyframe=key))
                assert conn(s) not in dests
                for d in dests:  # only receivers switched to that layer, at a keyframe
                    assert sfu.receiving(d)[1][s] == layer
            case ("tick", int(dt)):
                now += dt
                sfu.tick(now)
        for s in joined:
            heard, current, waits = sfu.receiving(conn(s))
            assert len(heard) <= AUDIO_STREAMS
            assert s not in heard
            assert s not in current
            assert s not in waits
            assert set(current) | set(waits) <= joined
    assert sfu.stats().participants == len(joined)
