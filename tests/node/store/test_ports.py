"""The storage ports themselves (DESIGN section 2): small, disjoint, each implemented by
every backend, and one attribute of ``Storage`` each."""

from __future__ import annotations

import dataclasses
import inspect

from node.store import MemoryStore, RedisStore, SqliteStore, Storage, Store
from node.store.ports import MAX_PORT_METHODS, PORTS


def methods(port: type) -> set[str]:
    return {name for name, value in vars(port).items() if inspect.iscoroutinefunction(value)}


def test_no_port_has_more_than_twelve_methods() -> None:
    for port in PORTS:
        assert 0 < len(methods(port)) <= MAX_PORT_METHODS == 12, port.__name__


def test_the_ports_are_disjoint_and_make_up_the_store() -> None:
    every = [name for port in PORTS for name in methods(port)]
    assert len(every) == len(set(every))
    assert {name for port in Store.__mro__ for name in methods(port)} == set(every)


def test_every_backend_implements_every_port() -> None:
    for backend in (MemoryStore, SqliteStore, RedisStore):
        for port in PORTS:
            for name in methods(port):
                assert inspect.iscoroutinefunction(getattr(backend, name)), (backend, name)


def test_storage_has_one_attribute_per_port() -> None:
    hints = {f.name: f.type for f in dataclasses.fields(Storage)}
    assert sorted(hints.values()) == sorted(port.__name__ for port in PORTS)
    bundle = Storage.of(MemoryStore())
    assert all(getattr(bundle, name) is not None for name in hints)
