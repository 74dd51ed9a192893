"""Nodes of several domains, each with its rooms' cores and a :class:`Cascade`, joined by
in-memory links: room messages go through the wire codec, datagrams through each side's
core, and what crosses each link is counted."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import Final

from node.sfu import INTERVAL_MS, LayerSpec, Notice, Sfu, VideoRequest
from node.sfu.cascade import Cascade, Port, Send, Step, room_key
from node.sfu.model import DEFAULT_LAYERS, Conn
from tests.node.sfu.kit import T0, audio
from wire import encode
from wire.media import peek_route
from wire.media_link import decode_link_traffic

ROOM: Final = bytes(range(16))


class Node:
    """One domain's node: rooms (by local key), its cascade, the notices to its own
    participants, and the datagrams they received."""

    def __init__(self, net: Net, name: str) -> None:
        self.net, self.name = net, name
        self.cores: dict[bytes, Sfu] = {}
        self.anchored_rooms: set[bytes] = set()
        self.cascade = Cascade(self)
        self.notices: list[Notice] = []
        self.received: dict[Conn, list[bytes]] = defaultdict(list)

    # --- Rooms ---------------------------------------------------------------------------
    def core(self, key: bytes) -> Sfu:
        if key not in self.cores:
            self.cores[key] = Sfu(self.net.now)
        return self.cores[key]

    def anchored(self, room: bytes, link: Hashable) -> bool:
        return room in self.anchored_rooms

    # --- participants --------------------------------------------------------------------
    def key(self, anchor: str) -> bytes:
        return ROOM if anchor == self.name else room_key(anchor, ROOM)

    def host(self) -> None:
        self.anchored_rooms.add(ROOM)

    def enter(self, anchor: str) -> None:
        """Join the room anchored at ``anchor`` over the link to it."""
        self.net.send(self, self.cascade.join(anchor, self.key(anchor), ROOM))
        self.net.pump()

    def join(
        self, anchor: str, conn: str, sender: int, layers: tuple[LayerSpec, ...] = DEFAULT_LAYERS
    ) -> None:
        key = self.key(anchor)
        self.handle(Step(notices=self.core(key).join(conn, sender, layers)))
        for send in self.cascade.sender_added(key, conn, sender, layers):
            self.net.send(self, send)
        self.net.pump()

    def request(self, anchor: str, conn: str, videos: int, height: int = 720) -> None:
        notices = self.core(self.key(anchor)).request(conn, VideoRequest(videos, height, 4000))
        self.handle(Step(notices=notices))
        self.net.pump()

    def leave(self, anchor: str, conn: str, senders: Iterable[int]) -> None:
        key = self.key(anchor)
        self.handle(Step(notices=self.core(key).leave(conn)))
        for send in self.cascade.senders_removed(key, conn, list(senders)):
            self.net.send(self, send)
        self.net.pump()

    # --- carrying out ---------------------------------------------------------------------
    def handle(self, step: Step) -> None:
        for send in step.sends:
            self.net.send(self, send)
        for send in self.cascade.notices(step.notices):
            self.net.send(self, send)
        self.notices += [n for n in step.notices if not isinstance(n.conn, Port)]

    def datagram(self, key: bytes, source: Conn, data: bytes) -> None:
        for dest in self.cores[key].on_datagram(source, data):
            if isinstance(dest, Port):
                self.net.carry(self, dest.link, data)
            else:
                self.received[dest].append(data)

    def tick(self) -> None:
        for core in list(self.cores.values()):
            self.handle(Step(notices=core.tick(self.net.now)))


class Net:
    """The nodes and their links; ``link_bytes[(from, to)]`` what crossed each way."""

    def __init__(self, *names: str) -> None:
        self.now = T0
        self.nodes = {name: Node(self, name) for name in names}
        self.queue: list[tuple[str, str, bytes]] = []
        self.link_bytes: dict[tuple[str, str], int] = defaultdict(int)
        self.link_datagrams: dict[tuple[str, str], int] = defaultdict(int)
        self.messages: dict[tuple[str, str], int] = defaultdict(int)  # (from, type name)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def send(self, source: Node, send: Send) -> None:
        self.messages[(source.name, type(send.message).__name__)] += 1
        self.queue.append((source.name, str(send.link), encode(send.message)))

    def pump(self) -> None:
        while self.queue:
            source, target, data = self.queue.pop(0)
            node = self.nodes[target]
            node.handle(node.cascade.receive(source, decode_link_traffic(data)))  # type: ignore[arg-type]

    def carry(self, source: Node, target: str, data: bytes) -> None:
        self.link_bytes[(source.name, target)] += len(data)
        self.link_datagrams[(source.name, target)] += 1
        node = self.nodes[target]
        route = peek_route(data)
        assert route is not None
        port = node.cascade.route(source.name, route[0])
        if port is not None:
            node.datagram(port.key, port, data)

    def tick(self) -> None:
        self.now += INTERVAL_MS
        for node in self.nodes.values():
            node.tick()
        self.pump()

    def speak(self, talkers: dict[tuple[str, str, int], int], intervals: int) -> None:
        """Each ``(node, anchor, sender)`` talks at its level (conn ``p<sender>``)."""
        for _ in range(intervals):
            for _ in range(15):
                for (name, anchor, sender), level in talkers.items():
                    node = self.nodes[name]
                    node.datagram(node.key(anchor), f"p{sender}", audio(sender, level))
            self.tick()
