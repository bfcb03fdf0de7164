"""The index of phones seen: the only state of a run that grows with the file.

A dict of int to int costs about 115 bytes an entry (11.5 MiB per 100,000 rows, measured);
this open-addressing table keeps a phone (E.164 digits as an int) and a row number in 16
bytes a slot, at most half full: 3 to 6 MiB per 100,000 distinct phones.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing spreads sequential numbers over the table
_MASK64 = (1 << 64) - 1


class PhoneIndex:
    """Phone -> row number, for E.164 strings such as ``"+56987654321"``."""

    def __init__(self, capacity_bits: int = 14) -> None:
        self._bits = capacity_bits
        self._keys = array("q", bytes(8 << capacity_bits))
        self._rows = array("q", bytes(8 << capacity_bits))
        self._count = 0

    def _slot(self, key: int) -> int:
        """The slot holding ``key``, or the empty slot where it belongs."""
        keys = self._keys
        mask = (1 << self._bits) - 1
        slot = ((key * _GOLDEN) & _MASK64) >> (64 - self._bits)
        while keys[slot] and keys[slot] != key:
            slot = (slot + 1) & mask
        return slot

    def setdefault(self, phone: str, row: int) -> int:
        """The row already stored for ``phone``; else store ``row`` and return it."""
        key = int(phone[1:])
        slot = self._slot(key)
        if self._keys[slot]:
            return self._rows[slot]
        self._store(slot, key, row)
        return row

    def put(self, phone: str, row: int) -> None:
        key = int(phone[1:])
        slot = self._slot(key)
        if self._keys[slot]:
            self._rows[slot] = row
        else:
            self._store(slot, key, row)

    def get(self, phone: str) -> int | None:
        slot = self._slot(int(phone[1:]))
        return self._rows[slot] if self._keys[slot] else None

    def items(self) -> Iterator[tuple[str, int]]:
        """Every (phone, value) stored, in no particular order."""
        return ((f"+{key}", row) for key, row in zip(self._keys, self._rows, strict=True) if key)

    def _store(self, slot: int, key: int, row: int) -> None:
        self._keys[slot] = key
        self._rows[slot] = row
        self._count += 1
        if 2 * self._count > len(self._keys):
            self._grow()

    def _grow(self) -> None:
        old_keys, old_rows = self._keys, self._rows
        self._bits += 1
        self._keys = array("q", bytes(8 << self._bits))
        self._rows = array("q", bytes(8 << self._bits))
        for key, row in zip(old_keys, old_rows, strict=True):
            if key:
                slot = self._slot(key)
                self._keys[slot] = key
                self._rows[slot] = row
