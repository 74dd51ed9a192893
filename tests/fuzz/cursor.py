"""Cutting one fuzz input into the several values a target needs.

A target that takes more than one value (a mode, header strings, chunk sizes) reads them
from the front of its input with a :class:`Cursor`. Reading past the end gives zeros and
empty strings, never an error, so every input is a valid input of the target; the
fuzzer's mutations of a prefix change the values, its mutations of the rest the payload.
"""

from __future__ import annotations


class Cursor:
    """Reads values from the front of ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        """The next byte (0 past the end)."""
        return self.int(1)

    def int(self, size: int) -> int:
        """The next ``size`` bytes as a big-endian unsigned int."""
        return int.from_bytes(self.take(size).ljust(size, b"\0"), "big")

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer at the end)."""
        part = self.data[self.at : self.at + size]
        self.at += len(part)
        return part

    def chunk(self) -> bytes:
        """A value with its length before it: one byte below 255, else 255 and two bytes."""
        size = self.byte()
        return self.take(self.int(2) if size == 255 else size)

    def text(self) -> str:
        """A :meth:`chunk` as an HTTP server hands a header over: latin-1."""
        return self.chunk().decode("latin-1")

    def rest(self) -> bytes:
        """Everything not read yet."""
        part = self.data[self.at :]
        self.at = len(self.data)
        return part
