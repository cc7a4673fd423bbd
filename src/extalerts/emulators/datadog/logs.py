"""A log as the emulator stores it after intake and processing, and how attributes are read.

Datadog keeps reserved attributes (``host``, ``source``, ``status``, ``service``, ``trace_id``,
``message``; ``log_configuration/attributes_naming_convention.md``, "Reserved attributes") apart from
the JSON attributes searched with ``@``; tags (``env:prod``) apart again.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

RESERVED = ("host", "source", "status", "service", "trace_id", "message")


@dataclass
class StoredLog:
    """One log after intake processing: what searches, monitors and the Aggregate API read."""

    sequence: int
    timestamp_ms: int
    received_ms: int
    attributes: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    reserved: dict[str, Any] = field(default_factory=dict)


def object_path(attributes: Any, path: str) -> Any:
    """The value at a dotted path through objects only (``None`` when absent). Processors read their
    ``source`` this way: no page documents a processor path that crosses an array, so none does."""
    node = attributes
    for step in path.split("."):
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node


def path_values(attributes: Any, path: str) -> list[Any]:
    """Every leaf value at a dotted path, arrays flattened on the way and at the end.

    Search reads attributes this way: "`@Event.EventData.Data.Name:ObjectServer` matches all logs with
    the key Name and value ObjectServer" inside an array of objects, and an attribute "whose value is
    either Peter or an array that contains Peter" matches ``Peter`` (``logs/explorer/search_syntax.md``,
    "Arrays")."""
    return list(_walk(attributes, path.split(".") if path else []))


def _walk(node: Any, steps: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, steps)
        return
    if not steps:
        yield node
        return
    if isinstance(node, dict) and steps[0] in node:
        yield from _walk(node[steps[0]], steps[1:])


def set_path(attributes: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path, creating objects on the way (an attribute ``a.b`` is nested JSON)."""
    steps = path.split(".")
    node = attributes
    for step in steps[:-1]:
        child = node.get(step)
        if not isinstance(child, dict):
            child = node[step] = {}
        node = child
    node[steps[-1]] = value


def remove_path(attributes: dict[str, Any], path: str) -> None:
    steps = path.split(".")
    node: Any = attributes
    for step in steps[:-1]:
        if not isinstance(node, dict):
            return
        node = node.get(step)
    if isinstance(node, dict):
        node.pop(steps[-1], None)


def text_of(value: Any) -> str:
    """A scalar as search and templates see it: JSON spelling for booleans and null, integral numbers
    without a decimal point."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def number_of(value: Any) -> float | None:
    """A numeric value (or a string holding one), as a numeric facet reads it; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class LogStore:
    """Stored logs in timestamp order, with each search's verdict per log remembered (a stored log never
    changes, so a search is run once per log however many evaluations read it)."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, int]] = []
        self._logs: list[StoredLog] = []
        self._verdicts: dict[str, dict[int, bool]] = {}

    def add(self, log: StoredLog) -> None:
        key = (log.timestamp_ms, log.sequence)
        at = bisect.bisect_right(self._keys, key)
        self._keys.insert(at, key)
        self._logs.insert(at, log)

    def __len__(self) -> int:
        return len(self._logs)

    def all(self) -> list[StoredLog]:
        return list(self._logs)

    def between(self, start_ms: int, end_ms: int, received_by_ms: int | None = None) -> list[StoredLog]:
        """Logs with ``start_ms <= timestamp < end_ms``, received by ``received_by_ms`` when given (an
        evaluation at time T sees only what had arrived by T)."""
        low = bisect.bisect_left(self._keys, (start_ms, -1))
        high = bisect.bisect_left(self._keys, (end_ms, -1))
        found = self._logs[low:high]
        if received_by_ms is not None:
            found = [log for log in found if log.received_ms <= received_by_ms]
        return found

    def matching(self, key: str, matches: Callable[[StoredLog], bool], logs: Iterable[StoredLog]) -> list[StoredLog]:
        """``logs`` that ``matches`` (the compiled search named ``key``) accepts."""
        verdicts = self._verdicts.setdefault(key, {})
        out: list[StoredLog] = []
        for log in logs:
            verdict = verdicts.get(log.sequence)
            if verdict is None:
                verdict = verdicts[log.sequence] = matches(log)
            if verdict:
                out.append(log)
        return out

    def forget_verdicts(self) -> None:
        """Facets changed: numeric searches may now match differently."""
        self._verdicts.clear()

    def drop_before(self, cutoff_ms: int) -> None:
        """Forget logs older than any evaluation can read."""
        at = bisect.bisect_left(self._keys, (cutoff_ms, -1))
        if at:
            gone = {log.sequence for log in self._logs[:at]}
            del self._keys[:at]
            del self._logs[:at]
            for verdicts in self._verdicts.values():
                for sequence in gone:
                    verdicts.pop(sequence, None)
