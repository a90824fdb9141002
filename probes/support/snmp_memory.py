"""What an snmp check remembers between polls, read back with care.

The memory outlives the process: `commwatch probe` keeps it in a state file, as JSON (tuples
come back as lists), possibly written by another version or damaged. An entry not of the shape
written here reads as absent, so that part starts afresh (a first poll: no rate, no reboot
seen) instead of failing every poll; the next write replaces it.
"""

from __future__ import annotations

from typing import Any

from monitor.core.model import as_number
from monitor.core.options import is_number

# The entries holding time.monotonic() readings (a state file moves them to another clock).
CLOCKS = ("counters_at", "if_resolved_at")

Where = tuple[int, str]  # an interface's ifIndex, and the column whose value names it


def _integer(value: Any) -> int | None:
    return value if is_number(value, whole=True) else None


class SnmpMemory:
    """Typed entries over a check's memory dict, which it reads and writes in place."""

    def __init__(self, memory: dict[str, Any]) -> None:
        self._memory = memory

    @property
    def uptime(self) -> tuple[int, float] | None:
        """sysUpTime's ticks at the last poll, and when (wall clock)."""
        value = self._memory.get("uptime")
        if not isinstance(value, list | tuple) or len(value) != 2:
            return None
        ticks, at = _integer(value[0]), as_number(value[1])
        return None if ticks is None or at is None else (ticks, at)

    @uptime.setter
    def uptime(self, value: tuple[int, float]) -> None:
        self._memory["uptime"] = value

    @property
    def rebooted_at(self) -> float | None:
        """When the agent last restarted, as far as polls have seen (wall clock)."""
        return as_number(self._memory.get("rebooted_at"))

    @rebooted_at.setter
    def rebooted_at(self, at: float) -> None:
        self._memory["rebooted_at"] = at

    @property
    def if_index(self) -> dict[str, Where | None]:
        """Interface names resolved so far: where each is, or None when it was not found."""
        value = self._memory.get("if_index")
        if not isinstance(value, dict):
            return {}
        names: dict[str, Where | None] = {}
        for name, where in value.items():
            if where is None:
                names[name] = None
            elif isinstance(where, list | tuple) and len(where) == 2:
                index, column = _integer(where[0]), where[1]
                if index is not None and isinstance(column, str):
                    names[name] = (index, column)
        return names

    def resolved(self, names: dict[str, Where | None], at: float) -> None:
        """Record names looked up at `at` (monotonic), beside those known already."""
        self._memory["if_index"] = {**self.if_index, **names}
        self._memory["if_resolved_at"] = at

    @property
    def if_resolved_at(self) -> float:
        """When names were last looked up (monotonic); 0 when never."""
        return as_number(self._memory.get("if_resolved_at")) or 0.0

    @property
    def counters(self) -> dict[str, int]:
        """The interface counters of the last poll, by `name@index.field`."""
        value = self._memory.get("counters")
        if not isinstance(value, dict):
            return {}
        return {key: count for key, count in value.items() if _integer(count) is not None}

    @property
    def counters_at(self) -> float | None:
        """When the counters were read (monotonic)."""
        return as_number(self._memory.get("counters_at"))

    def read_counters(self, counters: dict[str, int], at: float) -> None:
        self._memory["counters"], self._memory["counters_at"] = counters, at
