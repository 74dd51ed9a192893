"""An in-memory :class:`~client.store.base.StateStore`, for tests and ephemeral clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from client.errors import StoreError
from client.store.base import check_slot, check_value

# Pending writes of one transaction level: ``None`` marks a deletion.
_Layer = dict[tuple[str, bytes], bytes | None]


class MemoryStore:
    """A dict per namespace; a transaction buffers its writes in a layer and applies them
    on success (nested transactions stack layers)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[bytes, bytes]] = {}
        self._layers: list[_Layer] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore(namespaces={sorted(self._data)!r}, closed={self._closed})"

    def get(self, ns: str, key: bytes) -> bytes | None:
        self._check_open()
        check_slot(ns, key)
        for layer in reversed(self._layers):
            if (ns, key) in layer:
                return layer[ns, key]
        return self._data.get(ns, {}).get(key)

    def put(self, ns: str, key: bytes, value: bytes) -> None:
        self._check_open()
        check_slot(ns, key)
        check_value(value)
        self._write(ns, key, value)

    def delete(self, ns: str, key: bytes) -> None:
        self._check_open()
        check_slot(ns, key)
        self._write(ns, key, None)

    def items(self, ns: str) -> list[tuple[bytes, bytes]]:
        self._check_open()
        check_slot(ns, b"")
        merged = dict(self._data.get(ns, {}))
        for layer in self._layers:
            for (layer_ns, key), value in layer.items():
                if layer_ns != ns:
                    continue
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        return sorted(merged.items())

    def put_many(self, ns: str, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        with self.transaction():
            for key, value in pairs:
                self.put(ns, key, value)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._check_open()
        self._layers.append({})
        try:
            yield
        except BaseException:
            if self._layers:
                self._layers.pop()
            raise
        self._check_open()  # closed inside the block: its writes are lost
        layer = self._layers.pop()
        if self._layers:
            self._layers[-1].update(layer)
        else:
            self._apply(layer)

    def close(self) -> None:
        self._closed = True
        self._data.clear()
        self._layers.clear()

    def _write(self, ns: str, key: bytes, value: bytes | None) -> None:
        if self._layers:
            self._layers[-1][ns, key] = value
        else:
            self._apply({(ns, key): value})

    def _apply(self, layer: _Layer) -> None:
        for (ns, key), value in layer.items():
            if value is None:
                self._data.get(ns, {}).pop(key, None)
            else:
                self._data.setdefault(ns, {})[key] = value

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
