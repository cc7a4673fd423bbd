"""The merge: the map steps' partial aggregates combined, whatever split of the input made them.

Each :class:`~extalerts.engine.scan.Partial` is added to the ``partials`` table as it arrives (in any
order); rows of the same minute bucket and group, from different batches, are combined when read:
counts and sums add up, minima and maxima take theirs, histograms add their counts per value,
distinct sets unite. What reading found (bad lines, warnings, type mismatches) is merged in the
input's file order, so that it reads as one pass over the files would have."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extalerts.engine.lines import LATEST_EVENT_MS, _lines_outside, _time_text
from extalerts.engine.results import MINUTE_MS, Group
from extalerts.engine.scan import MAX_REPORTED_BAD_LINES, Partial
from extalerts.engine.staging import Staging, _Keys
from extalerts.filter.duckdb import sql_string
from extalerts.spec.loader import ResolvedRule

#: Time outliers: events in a stretch of the input holding under this share of its events, apart
#: from every larger stretch by more than :data:`OUTLIER_GAP_MS` without an event (an event
#: stamped in seconds, a year early), are left out of the evaluation and reported.
OUTLIER_SHARE = 0.01
OUTLIER_GAP_MS = 86_400_000
#: The longest stretch of time one replay evaluates (memory grows with it, not with the events);
#: events beyond it, away from the bulk of the input, are time outliers too.
MAX_SPAN_MS = 92 * 86_400_000


MAX_REPORTED_OUTLIERS = 5


class Merged(Staging):
    """What the loaded input holds, across its files."""

    def _merge_aggregates(self, partial: Partial) -> None:
        """Add a map step's aggregates to ``partials`` (any order: they are combined when read)."""
        if partial.aggregates is None:
            return
        with tempfile.TemporaryDirectory(prefix="extalerts-") as folder:
            path = Path(folder) / "partial.parquet"
            path.write_bytes(partial.aggregates)
            source = f"read_parquet({sql_string(str(path))})"
            if self._loaded:
                self.db.execute(f"INSERT INTO partials BY NAME SELECT * FROM {source}")
            else:
                self.db.execute(f"CREATE OR REPLACE TEMP TABLE partials AS SELECT * FROM {source}")
                self._loaded = True

    def _merge_reports(self, partials: Sequence[Partial], files: Sequence[str]) -> None:
        """Add up what the map steps found reading their files, in the order of ``files``: the
        bad lines listed are the input's first, whichever batch read them."""
        order = {file: index for index, file in enumerate(files)}
        for partial in sorted(partials, key=lambda p: min((order.get(f, len(order)) for f in p.files), default=0)):
            self.events += partial.events
            self.bad_line_count += partial.bad_line_count
            self.bad_lines.extend(partial.bad_lines)
            self.warnings.extend(partial.warnings)
            self.exact_reads += partial.exact_reads
            self._file_spans.update(partial.file_spans)
            for name, (count, first) in partial.type_mismatches.items():
                total, earlier = self.type_mismatches.get(name, (0, None))
                self.type_mismatches[name] = (total + count, earlier or first)
        self.bad_lines.sort(key=lambda line: order.get(line.source, len(order)))
        del self.bad_lines[MAX_REPORTED_BAD_LINES:]

    def _set_aside_time_outliers(self) -> None:
        """Leave out of the evaluation the events stamped far from all the others (see
        :data:`OUTLIER_SHARE`), and those before 1970 or past year 9999, and warn with where they
        are: evaluating from 1970 for one event stamped in seconds would take a minute per minute."""
        if not self._loaded:
            return
        # From one row per key: rows of the same minute bucket and group from different files or
        # batches count in the minute of the earliest of them, as they would read from one file.
        keys = ", ".join(self._key_columns)
        by_key = f"(SELECT min(_first) AS _first, sum(_events) AS _events FROM partials GROUP BY {keys or 'ALL'})"
        stretches = self.db.execute(
            f"""WITH minutes AS (
                SELECT _first // {MINUTE_MS} AS m, sum(_events) AS n FROM {by_key}
                WHERE _first BETWEEN 0 AND {LATEST_EVENT_MS} GROUP BY 1),
            marked AS (SELECT m, n, CASE WHEN m - lag(m) OVER (ORDER BY m) > {OUTLIER_GAP_MS // MINUTE_MS}
                THEN 1 ELSE 0 END AS starts FROM minutes),
            numbered AS (SELECT m, n, sum(starts) OVER (ORDER BY m) AS stretch FROM marked)
            SELECT min(m), max(m), sum(n) FROM numbered GROUP BY stretch ORDER BY 1"""
        ).fetchall()
        low_ms, high_ms = _bulk(
            [(int(low) * MINUTE_MS, (int(high) + 1) * MINUTE_MS - 1, int(n)) for low, high, n in stretches]
        )
        outside = f"_last < {low_ms} OR _first > {high_ms}"
        row = self.db.execute(f"SELECT coalesce(sum(_events), 0) FROM partials WHERE {outside}").fetchone()
        count = int(row[0]) if row else 0
        if not count:
            return
        self.db.execute(f"DELETE FROM partials WHERE {outside}")
        self.time_outlier_count += count
        self.events -= count
        examples: list[str] = []
        for file, (first, last) in self._file_spans.items():
            if len(examples) < MAX_REPORTED_OUTLIERS and (first < low_ms or last > high_ms):
                wanted = MAX_REPORTED_OUTLIERS - len(examples)
                examples += [
                    f"{file}:{n} ({_time_text(ms)})" for n, ms in _lines_outside(file, low_ms, high_ms, wanted)
                ]
        events = "event" if count == 1 else "events"
        self.warnings.append(
            f"{count:,} {events} stamped far from the rest of the input ({_time_text(low_ms)} to "
            f"{_time_text(high_ms)}) left out of the evaluation (EventTimestampMs in seconds, or a clock "
            f"off?): {', '.join(examples) or 'not found reading the files again'}"
        )

    def span(self) -> tuple[int | None, int | None]:
        if not self._loaded:
            return None, None
        row = self.db.execute("SELECT min(_first), max(_last) FROM partials").fetchone()
        if row is None or row[0] is None:
            return None, None
        return int(row[0]), int(row[1])

    def kept_values(self) -> int:
        """How many values the percentile and distinct-count rules keep, across their minute buckets
        (a percentile's histogram keeps each value once, with its count): what grows with the input
        beyond the per-minute counts."""
        columns = sorted({a.keys.values for a in self._rule_aggregates.values() if a.keys.values})
        if not self._loaded or not columns:
            return 0
        counted = {a.keys.values for a in self._rule_aggregates.values() if a.keys.counted}
        sizes = [f"cardinality({column})" if column in counted else f"len({column})" for column in columns]
        total = " + ".join(f"coalesce(sum({size}), 0)" for size in sizes)
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
        """Every value a rule kept, one row each with its groups, bucket ``b`` and count ``c`` (events
        holding it; 1 in a distinct set), across partials: the same value and bucket may repeat."""
        by = "".join(f"{group}, " for group in keys.groups)
        if keys.counted:
            values = f"unnest(map_keys({keys.values})) AS value, unnest(map_values({keys.values})) AS c"
        else:
            values = f"unnest({keys.values}) AS value, 1 AS c"
        return f"SELECT {by}{keys.bucket} AS b, {values} FROM partials WHERE {keys.grouped}"


def _group(rule: ResolvedRule, values: Sequence[Any]) -> Group:
    """A group from the values of the rule's group-by fields, in their order."""
    return tuple(zip(rule.rule.group_by, (str(v) for v in values), strict=True))


def _bulk(stretches: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """The time range evaluated, from the input's stretches of events (first ms, last ms, events):
    the stretch holding the most events (the latest of equals), widened to every stretch holding
    at least :data:`OUTLIER_SHARE` of the events while the range spans at most :data:`MAX_SPAN_MS`.
    (0, -1) when there is none."""
    if not stretches:
        return 0, -1
    total = sum(n for _, _, n in stretches)
    low, high, _ = max(stretches, key=lambda s: (s[2], s[0]))
    for first, last, events in sorted(stretches, key=lambda s: -s[2]):
        if events >= OUTLIER_SHARE * total and max(high, last) - min(low, first) <= MAX_SPAN_MS:
            low, high = min(low, first), max(high, last)
    return low, high
