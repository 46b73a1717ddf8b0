"""The command ids a profile remembers, so a resent command is answered instead of applied twice.

Only a command needs the memory; a read (``why``, ``who``, ``replay --at``) never looks at it. So
a snapshot carries it packed in one string, and a profile restored from a snapshot unpacks it
only when a command first asks: until then the ids its later events name are queued, and
unpacking applies them in order, giving exactly the memory that folding every event gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

# How many command ids a profile remembers for de-duplicating retries (bounds the state and the
# snapshots).
REMEMBERED_COMMANDS = 4096

Remembered = tuple[int, str]  # (the version the command's last event reached, its fingerprint)


class CommandMemory:
    """The last ``REMEMBERED_COMMANDS`` command ids applied, oldest first, each with the
    version its last event reached and the command's fingerprint."""

    def __init__(self, packed: str = "") -> None:
        self._packed = packed
        self._later: list[tuple[str, int, str]] = []
        self._ids: dict[str, Remembered] | None = None if packed else {}

    @classmethod
    def of(cls, ids: dict[str, list[Any]]) -> CommandMemory:
        """A memory holding ``ids`` (as JSON gives them: id -> [version, fingerprint])."""
        memory = cls()
        for command_id, (version, command) in ids.items():
            memory.remember(command_id, version, command)
        return memory

    def remember(self, command_id: str, version: int, command: str) -> None:
        """Note an applied event's command; forgets the oldest id past the bound."""
        if self._ids is None:
            self._later.append((command_id, version, command))
            return
        self._ids.pop(command_id, None)
        self._ids[command_id] = (version, command)
        while len(self._ids) > REMEMBERED_COMMANDS:
            del self._ids[next(iter(self._ids))]

    def pack(self) -> str:
        """The memory as one string, oldest first (what a snapshot stores)."""
        if self._ids is None and not self._later:
            return self._packed
        flat = [x for cid, (version, command) in self.ids.items() for x in (cid, version, command)]
        return json.dumps(flat, separators=(",", ":"), ensure_ascii=False)

    def copy(self) -> CommandMemory:
        """An independent memory with the same content (packed parts are shared, immutable)."""
        copied = CommandMemory(self._packed)
        copied._later = list(self._later)
        copied._ids = None if self._ids is None else dict(self._ids)
        return copied

    @property
    def ids(self) -> dict[str, Remembered]:
        """The remembered ids, unpacked on first use."""
        if self._ids is None:
            flat = json.loads(self._packed)
            self._ids = {flat[i]: (flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)}
            later, self._later = self._later, []
            for command_id, version, command in later:
                self.remember(command_id, version, command)
        return self._ids

    def __contains__(self, command_id: object) -> bool:
        return command_id in self.ids

    def __getitem__(self, command_id: str) -> Remembered:
        return self.ids[command_id]

    def __setitem__(self, command_id: str, remembered: Remembered) -> None:
        self.remember(command_id, *remembered)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CommandMemory):
            return self.ids == other.ids
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CommandMemory({len(self)} ids)"
