"""The merge: the ``partials`` of every input combined by key (sum, min, max, lists), per rule and group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from extalerts.engine.results import (
    Group,
)
from extalerts.engine.staging import Staging, _Keys
from extalerts.spec.loader import ResolvedRule


class Merged(Staging):
    """What the loaded input holds, across its files."""

    def span(self) -> tuple[int | None, int | None]:
        if not self._loaded:
            return None, None
        row = self.db.execute("SELECT min(_first), max(_last) FROM partials").fetchone()
        if row is None or row[0] is None:
            return None, None
        return int(row[0]), int(row[1])

    def kept_values(self) -> int:
        """How many values the percentile and distinct-count rules keep, across their minute buckets:
        what grows with the input beyond the per-minute counts."""
        columns = sorted({a.keys.values for a in self._rule_aggregates.values() if a.keys.values})
        if not self._loaded or not columns:
            return 0
        total = " + ".join(f"coalesce(sum(len({column})), 0)" for column in columns)
        row = self.db.execute(f"SELECT {total} FROM partials").fetchone()
        return int(row[0]) if row else 0

    def absent_fields(self) -> list[str]:
        """Top-level fields the rules read that no event held (an empty list before any event)."""
        if not self._loaded or not self._seen_columns or not self.events:
            return []
        sums = ", ".join(f"coalesce(sum({column}), 0)" for column in self._seen_columns.values())
        row = self.db.execute(f"SELECT {sums} FROM partials").fetchone() or ()
        return [name for name, seen in zip(self._seen_columns, row, strict=True) if not seen]

    def shipped_events(self) -> int:
        """Events the Logpush job's filter ships (all events without one)."""
        if not self._loaded or self.shipped is None:
            return self.events
        row = self.db.execute("SELECT coalesce(sum(_shipped), 0) FROM partials").fetchone()
        return int(row[0]) if row else 0

    def _rows(self, rule: ResolvedRule) -> dict[Group, dict[int, Any]]:
        """The rule's aggregates per group, per bucket holding an event its filter matches."""
        if not self._loaded:
            return {}
        aggregates = self._rule_aggregates[rule.id]
        keys = aggregates.keys
        width = len(keys.groups)
        columns = ", ".join((keys.bucket, *keys.groups))
        combined = ", ".join(f"{self._combine[name]}({name})" for name in aggregates.names)
        query = (
            f"SELECT {columns}, {combined} FROM partials WHERE {keys.grouped} "
            f"GROUP BY {columns} HAVING sum({aggregates.names[0]}) > 0"
        )
        found: dict[Group, dict[int, Any]] = {}
        for row in self.db.execute(query).fetchall():
            group = _group(rule, row[1 : 1 + width])
            found.setdefault(group, {})[int(row[0])] = row[1 + width :]
        return found

    @staticmethod
    def _bucket_values(keys: _Keys) -> str:
        """Every value a rule listed, one row each with its groups and bucket ``b``, across inputs."""
        by = "".join(f"{group}, " for group in keys.groups)
        return f"SELECT {by}{keys.bucket} AS b, unnest({keys.values}) AS value FROM partials WHERE {keys.grouped}"


def _group(rule: ResolvedRule, values: Sequence[Any]) -> Group:
    """A group from the values of the rule's group-by fields, in their order."""
    return tuple(zip(rule.rule.group_by, (str(v) for v in values), strict=True))
