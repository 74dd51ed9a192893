"""The selective forwarding core of a meeting (DESIGN section 9; issue 18, "a selective
forwarding unit"): clear datagram headers and receivers' requests in, forwarding
decisions and notices to senders out. It never decrypts and never reads a payload.

Pure: no trio, no clock, no socket. The trio shell feeds it

* :meth:`Sfu.join` / :meth:`Sfu.leave`: a participant's media connection (an opaque
  :data:`~node.sfu.model.Conn`) and the sender id the node assigned it; the sender id is
  bound to that connection, and a datagram naming it that comes on any other connection
  is dropped and counted (``stream_not_bound``);
* :meth:`Sfu.request`: a receiver's :class:`~node.sfu.model.VideoRequest`;
* :meth:`Sfu.on_datagram`: each media datagram, answered by the tuple of connections to
  send it to (empty: dropped, and counted by reason);
* :meth:`Sfu.tick` with the time (ms), as often as it likes (every 100 ms, say): every
  :data:`~node.sfu.speakers.INTERVAL_MS` it recomputes the speakers and every receiver's
  allocation; it returns the :data:`~node.sfu.model.Notice` s to send to senders;
* for a cascade link (:mod:`node.sfu.cascade`): :meth:`Sfu.add_link` makes a connection an
  *explicit* video subscriber, which owns the far side's senders (:meth:`Sfu.join` once per
  sender, :meth:`Sfu.remove_sender`), receives exactly the ``(sender, layer)`` set the far
  side asks for (:meth:`Sfu.subscribe`; a new sender starts subscribed to all its layers)
  and audio by the normal rule; :meth:`Sfu.keyframe` passes the far side's keyframe
  requests on to the connection that owns the sender.

Audio: every receiver gets the dominant speaker and the loudest others, up to
:data:`AUDIO_STREAMS` streams, never its own; datagrams without voice activity are dropped.

Video: every receiver gets the layers :func:`node.sfu.allocation.allocate` gives it.
A receiver moves to another layer of a sender only at a keyframe of that layer (the first
packet of a keyframe): until one comes it keeps the layer it had (or nothing), so its
decoder never gets a delta frame of a layer it holds no keyframe for. Each wait asks the
sender for a keyframe (:class:`~node.sfu.model.KeyframeRequest`). A layer that nobody
receives or waits for is paused at its sender (:class:`~node.sfu.model.LayerNotice`), and
resumed when somebody needs it again.

The per-datagram path is one header peek, one dict lookup for the sender and one list
index into a precomputed fan-out tuple per (sender, kind, layer): it builds no object of
its own, and the tuple it returns is shared, not copied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count, islice
from typing import Final

from node.sfu.allocation import Candidate, allocate
from node.sfu.model import (
    DEFAULT_LAYERS,
    MAX_LAYERS,
    NO_VIDEO,
    Conn,
    DropReason,
    KeyframeRequest,
    LayerNotice,
    LayerSpec,
    Notice,
    SfuStats,
    Speakers,
    VideoRequest,
    check_layers,
)
from node.sfu.speakers import INTERVAL_MS, Activity, SpeakerDetector
from wire.errors import WireError
from wire.media import SILENCE, TYPE_MEDIA, MediaKind, decode_datagram, peek_route

AUDIO_STREAMS: Final = 4
"""Audio streams a receiver gets: the dominant speaker and the 3 loudest others."""
_AUDIO: Final = 0  # fan-out index of the audio track; video layer L is at 1 + L
_TRACKS: Final = range(1 + MAX_LAYERS)
# Enum members as module constants: an attribute lookup on an enum class costs more than
# the rest of a drop on the per-datagram path.
_MALFORMED: Final = DropReason.MALFORMED
_NOT_BOUND: Final = DropReason.STREAM_NOT_BOUND
_SILENCE: Final = DropReason.SILENCE
_NOT_SELECTED: Final = DropReason.NOT_SELECTED
_AUDIO_KIND: Final = MediaKind.AUDIO
_MEDIA: Final = TYPE_MEDIA
_NOTHING: Final[tuple[Conn, ...]] = ()


@dataclass(slots=True, eq=False)
class _Sender:
    conn: Conn
    sender: int
    layers: tuple[LayerSpec, ...]
    seq: int
    activity: Activity
    fanout: list[tuple[Conn, ...]] = field(default_factory=lambda: [_NOTHING] * (1 + MAX_LAYERS))
    waiting: list[set[Conn]] = field(default_factory=lambda: [set() for _ in range(MAX_LAYERS)])
    active: list[bool] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Receiver:
    conn: Conn
    own: set[int] = field(default_factory=set)
    request: VideoRequest = NO_VIDEO
    audio: frozenset[int] = frozenset()
    current: dict[int, int] = field(default_factory=dict)  # sender -> layer it gets
    target: dict[int, int] = field(default_factory=dict)  # sender -> layer it waits for
    explicit: bool = False  # a cascade link: gets ``subs``, never an allocation
    subs: set[tuple[int, int]] = field(default_factory=set)  # (sender, layer) it asked for


class Sfu:
    """The forwarding state of one meeting on one node."""

    def __init__(self, now: int) -> None:
        self._senders: dict[int, _Sender] = {}
        self._receivers: dict[Conn, _Receiver] = {}
        self._detector = SpeakerDetector()
        self._seq = count()
        self._next_recompute = now + INTERVAL_MS
        self._notices: list[Notice] = []
        self._dirty = False
        self._received = 0
        self._forwarded = 0
        self._forwarded_bytes = 0
        self._switches = 0
        self._drops: dict[DropReason, int] = dict.fromkeys(DropReason, 0)

    # --- membership and requests -----------------------------------------------------------
    def join(
        self, conn: Conn, sender: int, layers: tuple[LayerSpec, ...] = DEFAULT_LAYERS
    ) -> list[Notice]:
        """The participant on ``conn`` sends as ``sender`` (the id the node assigned it),
        with simulcast ``layers`` (lowest first; empty: audio only). It sends every layer
        until told otherwise. ``ValueError`` if ``sender`` is taken or the layers are bad."""
        check_layers(layers)
        if sender in self._senders:
            raise ValueError("the sender id is bound already")
        activity = self._detector.add(sender)
        state = _Sender(conn, sender, layers, next(self._seq), activity)
        state.active = [True] * len(layers)
        self._senders[sender] = state
        receiver = self._receivers.setdefault(conn, _Receiver(conn))
        receiver.own.add(sender)
        for link in self._receivers.values():
            if link.explicit and link is not receiver:
                link.subs.update((sender, layer) for layer in range(len(layers)))
        self._dirty = True  # the others may want the newcomer: at the next tick
        return self._refresh(receiver)

    def add_link(self, conn: Conn) -> list[Notice]:
        """The cascade link ``conn`` joins as an explicit video subscriber, subscribed to
        every layer of every sender (the far side pauses what it does not need); its own
        senders come by :meth:`join`. ``ValueError`` if ``conn`` is here already."""
        if conn in self._receivers:
            raise ValueError("the connection is in the meeting already")
        link = self._receivers[conn] = _Receiver(conn, explicit=True)
        for state in self._senders.values():
            link.subs.update((state.sender, layer) for layer in range(len(state.layers)))
        link.audio = _audio_for(link, self._ranked())
        self._rebuild_all()
        return self._layer_notices()

    def remove_sender(self, conn: Conn, sender: int) -> list[Notice]:
        """The sender ``sender`` owned by ``conn`` (a link's far sender) went; ``conn``
        stays. Nothing if ``conn`` does not own it."""
        receiver = self._receivers.get(conn)
        if receiver is None or sender not in receiver.own:
            return []
        receiver.own.discard(sender)
        del self._senders[sender]
        self._detector.remove(sender)
        for other in self._receivers.values():
            other.current.pop(sender, None)
            other.target.pop(sender, None)
            other.audio = other.audio - {sender}
            if other.subs:
                other.subs -= {(sender, layer) for layer in range(MAX_LAYERS)}
        self._dirty = True
        return self._layer_notices()

    def subscribe(self, conn: Conn, sender: int, layer: int, active: bool) -> list[Notice]:
        """The link ``conn`` needs (``active``) or no longer needs ``layer`` of ``sender``:
        the far side's :class:`~node.sfu.model.LayerNotice`. ``ValueError`` if ``conn`` is
        no link, or ``sender`` is its own or has no such layer."""
        link = self._receivers.get(conn)
        state = self._senders.get(sender)
        if link is None or not link.explicit or state is None or state.conn == conn:
            raise ValueError("no such link or sender")
        if not 0 <= layer < len(state.layers):
            raise ValueError("no such layer")
        if active:
            link.subs.add((sender, layer))
        else:
            link.subs.discard((sender, layer))
        self._rebuild((state,))
        return self._layer_notices()

    def keyframe(self, conn: Conn, sender: int, layer: int) -> list[Notice]:
        """The link ``conn`` asks for a keyframe of ``layer`` of ``sender``: the request
        for the connection that owns it (nothing if unknown, or owned by ``conn``)."""
        state = self._senders.get(sender)
        if state is None or state.conn == conn or not 0 <= layer < len(state.layers):
            return []
        return [KeyframeRequest(state.conn, sender, layer)]

    def leave(self, conn: Conn) -> list[Notice]:
        """The connection ``conn`` went: its streams and its requests end."""
        receiver = self._receivers.pop(conn, None)
        if receiver is None:
            return []
        for sender in receiver.own:
            del self._senders[sender]
            self._detector.remove(sender)
        for state in self._senders.values():
            for waiting in state.waiting:
                waiting.discard(conn)
            fanout = state.fanout
            for index, dests in enumerate(fanout):
                if conn in dests:
                    fanout[index] = tuple(d for d in dests if d != conn)
        for other in self._receivers.values():
            for sender in receiver.own:
                other.current.pop(sender, None)
                other.target.pop(sender, None)
                if other.subs:
                    other.subs -= {(sender, layer) for layer in range(MAX_LAYERS)}
        self._dirty = True  # the others' freed slots are filled at the next tick
        return self._layer_notices()

    def request(self, conn: Conn, request: VideoRequest) -> list[Notice]:
        """The receiver on ``conn`` asks for ``request``; ``KeyError`` if it never joined."""
        receiver = self._receivers[conn]
        receiver.request = request
        return self._refresh(receiver)

    def tick(self, now: int) -> list[Notice]:
        """Recompute speakers and allocations when due; the notices gathered since the
        last call (layers to pause or resume, keyframes to ask for)."""
        if now >= self._next_recompute:
            self._next_recompute = now + INTERVAL_MS
            self._detector.recompute(now)
            self._dirty = True
        if self._dirty:
            self._notices += self._reallocate()
        notices, self._notices = self._notices, []
        return notices

    # --- datagrams ---------------------------------------------------------------------------
    def on_datagram(self, conn: Conn, data: bytes) -> tuple[Conn, ...]:
        """The connections to send the media datagram ``data`` (from ``conn``) to, unchanged;
        empty if it goes nowhere (counted by reason). Never raises.

        A signature datagram (``wire.media.TYPE_SIGNATURE``) goes to exactly the receivers
        of the track it covers, silent or not, and is no speech for the speaker detector."""
        route = peek_route(data)
        if route is None:
            return self._drop(_MALFORMED)
        sender, kind, layer, keyframe, level, voice, datagram_type = route
        state = self._senders.get(sender)
        if state is None or state.conn != conn:
            return self._drop(_NOT_BOUND)
        self._received += 1
        if datagram_type != _MEDIA:  # a signature: along its track, whoever speaks
            dests = state.fanout[_AUDIO if kind is _AUDIO_KIND else 1 + layer]
        elif kind is _AUDIO_KIND:
            activity = state.activity
            activity.frames += 1
            if not voice:
                return self._drop(_SILENCE)
            activity.loud += SILENCE - level
            dests = state.fanout[_AUDIO]
        else:
            if keyframe and state.waiting[layer] and _first_packet(data):
                self._switch(state, layer)
            dests = state.fanout[1 + layer]
        if not dests:
            return self._drop(_NOT_SELECTED)
        self._forwarded += len(dests)
        self._forwarded_bytes += len(dests) * len(data)
        return dests

    # --- views -----------------------------------------------------------------------------
    @property
    def speakers(self) -> Speakers:
        """The audio selection of the last recompute."""
        return self._detector.speakers

    def receiving(self, conn: Conn) -> tuple[frozenset[int], dict[int, int], dict[int, int]]:
        """What ``conn`` gets: its audio senders, ``{sender: layer}`` of the video it
        receives now, and ``{sender: layer}`` it waits for a keyframe of."""
        r = self._receivers[conn]
        waits = {s: layer for s, layer in r.target.items() if r.current.get(s) != layer}
        return r.audio, dict(r.current), waits

    def subscriptions(self, conn: Conn) -> frozenset[tuple[int, int]]:
        """The ``(sender, layer)`` set the link ``conn`` receives."""
        return frozenset(self._receivers[conn].subs)

    def owner(self, sender: int) -> Conn | None:
        """The connection that owns ``sender``, if it is here."""
        state = self._senders.get(sender)
        return None if state is None else state.conn

    def senders(self) -> list[tuple[int, Conn, tuple[LayerSpec, ...]]]:
        """Every sender: its id, the connection that owns it, its layers."""
        return [(s.sender, s.conn, s.layers) for s in self._senders.values()]

    def stats(self) -> SfuStats:
        """The counters, now."""
        links = sum(1 for r in self._receivers.values() if r.explicit)
        return SfuStats(
            participants=len(self._receivers) - links,
            received=self._received,
            forwarded=self._forwarded,
            forwarded_bytes=self._forwarded_bytes,
            switches=self._switches,
            drops=dict(self._drops),
            links=links,
        )

    # --- internals -------------------------------------------------------------------------
    def _drop(self, reason: DropReason) -> tuple[Conn, ...]:
        self._drops[reason] += 1
        return _NOTHING

    def _priority(self) -> list[_Sender]:
        """Video senders, on-stage first, then by most recent speech, then joining order."""
        dominant = self._detector.speakers.dominant
        last = self._detector.last_spoke
        return sorted(
            (s for s in self._senders.values() if s.layers),
            key=lambda s: (s.sender != dominant, -last(s.sender), s.seq),
        )

    def _reallocate(self) -> list[Notice]:
        """Every receiver's audio and video selection again, and every fan-out."""
        self._dirty = False
        ranked = self._ranked()
        priority = [(s.sender, s.layers) for s in self._priority()]
        notices: list[Notice] = []
        for r in self._receivers.values():
            r.audio = _audio_for(r, ranked)
            notices += self._allocate(r, priority)
        self._rebuild_all()
        return notices + self._layer_notices()

    def _refresh(self, r: _Receiver) -> list[Notice]:
        """``r``'s selection again (a join or a request), and the fan-outs it touches."""
        before = set(r.current) | set(r.target) | r.audio
        r.audio = _audio_for(r, self._ranked())
        notices = self._allocate(r, [(s.sender, s.layers) for s in self._priority()])
        touched = before | set(r.target) | r.audio | r.own
        self._rebuild([self._senders[s] for s in touched if s in self._senders])
        return notices + self._layer_notices()

    def _ranked(self) -> list[int]:
        return [s for s in self._detector.speakers.ranked if s in self._senders]

    def _allocate(self, r: _Receiver, priority: list[Candidate]) -> list[Notice]:
        """Set ``r``'s video targets; keyframe requests for the waits it starts."""
        own = r.own
        target = allocate(r.request, (c for c in priority if c[0] not in own))
        for sender in [s for s in r.current if s not in target]:
            del r.current[sender]
        notices: list[Notice] = []
        for sender, layer in r.target.items():  # waits that the new target drops
            gone = self._senders.get(sender)
            if gone is not None and target.get(sender) != layer:
                gone.waiting[layer].discard(r.conn)
        for sender, layer in target.items():
            state = self._senders[sender]
            waiting = state.waiting[layer]
            if r.current.get(sender) == layer:
                waiting.discard(r.conn)
            elif r.conn not in waiting:
                if not waiting:
                    notices.append(KeyframeRequest(state.conn, sender, layer))
                waiting.add(r.conn)
        r.target = target
        return notices

    def _switch(self, state: _Sender, layer: int) -> None:
        """A keyframe of ``layer`` came: the receivers waiting for it move to it."""
        for conn in state.waiting[layer]:
            self._receivers[conn].current[state.sender] = layer
            self._switches += 1
        state.waiting[layer].clear()
        self._rebuild((state,))
        self._notices += self._layer_notices()

    def _rebuild(self, senders: Iterable[_Sender]) -> None:
        """The fan-out tuples of ``senders``, from every receiver's selection."""
        receivers = list(self._receivers.values())
        for state in senders:
            s = state.sender
            state.fanout[_AUDIO] = tuple(r.conn for r in receivers if s in r.audio)
            for layer in range(MAX_LAYERS):
                state.fanout[1 + layer] = tuple(
                    r.conn
                    for r in receivers
                    if r.current.get(s, -1) == layer or (s, layer) in r.subs
                )

    def _rebuild_all(self) -> None:
        """Every fan-out tuple, in one pass over the receivers' selections."""
        lists: dict[int, list[list[Conn]]] = {s: [[] for _ in _TRACKS] for s in self._senders}
        for r in self._receivers.values():
            for s in r.audio:
                lists[s][_AUDIO].append(r.conn)
            for s, layer in r.current.items():
                lists[s][1 + layer].append(r.conn)
            for s, layer in r.subs:
                lists[s][1 + layer].append(r.conn)
        for s, tracks in lists.items():
            self._senders[s].fanout = [tuple(dests) for dests in tracks]

    def _layer_notices(self) -> list[Notice]:
        """Pause the layers nobody gets or waits for; resume those somebody needs again."""
        notices: list[Notice] = []
        for state in self._senders.values():
            for layer in range(len(state.layers)):
                needed = bool(state.fanout[1 + layer] or state.waiting[layer])
                if needed != state.active[layer]:
                    state.active[layer] = needed
                    notices.append(LayerNotice(state.conn, state.sender, layer, needed))
        return notices


def _audio_for(r: _Receiver, ranked: list[int]) -> frozenset[int]:
    """The first :data:`AUDIO_STREAMS` of ``ranked`` that are not ``r``'s own."""
    own = r.own
    return frozenset(islice((s for s in ranked if s not in own), AUDIO_STREAMS))


def _first_packet(data: bytes) -> bool:
    """Whether ``data`` is the first packet of its frame (read only on a keyframe that a
    receiver waits for, so not on the per-datagram path)."""
    try:
        return decode_datagram(data)[0].packet == 0
    except WireError:
        return False
