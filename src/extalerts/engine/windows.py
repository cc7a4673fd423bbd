"""Windows: each rule's evaluation times, and its value per group over each window of minute buckets."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from extalerts import observability_timings
from extalerts.engine.merge import Merged, _group
from extalerts.engine.results import (
    MINUTE_MS,
    Group,
    Semantics,
)
from extalerts.spec.loader import ResolvedRule
from extalerts.spec.models import (
    AbsenceSignal,
    Aggregation,
    CardinalitySignal,
    ChangeSignal,
    CountSignal,
    MeasureSignal,
    RatioSignal,
)


class Windows(Merged):
    """Each rule's values, window by window."""

    #: When the data is known to begin, if before the input's first event: a change's baseline from
    #: then on counts what the input holds (empty minutes included), not "unknown". ``extalerts
    #: verify`` sets it to the first minute it reads, as the provider's side counts from there.
    data_start_ms: int | None = None

    def _evaluation_times(
        self, rule: ResolvedRule, first: int | None, last: int | None, start_ms: int | None, end_ms: int | None
    ) -> list[int]:
        window_ms, delay_ms = evaluation_window_ms(rule, self.semantics)
        if start_ms is None:
            if first is None:
                return []
            start_ms = ceil_minute(first + window_ms + delay_ms)
        if end_ms is None:
            if last is None:
                return []
            end_ms = ceil_minute(last + 1 + delay_ms)
        step = schedule_minutes(rule, self.semantics) * MINUTE_MS
        start_ms = ceil_minute(start_ms)
        if step > MINUTE_MS:
            start_ms = math.ceil(start_ms / step) * step
        return list(range(start_ms, end_ms + 1, step))

    def _values(self, rule: ResolvedRule, times: list[int]) -> dict[Group, list[tuple[int, float | None]]]:
        if self._rule_aggregates[rule.id].keys.values is None:
            return self._bucketed(rule, times)
        return self._windowed(rule, times)

    def bucket_rows(self, rule_id: str) -> dict[Group, dict[int, tuple[Any, ...]]]:
        """A rule's minute buckets per group, as :func:`bucketed_values` reads them: the bucket of
        time ``t`` is ``(t - evaluation_delay % 1m) // 1m``; each row holds the count of events its
        filter matches first, then the ratio's matching count or the measure's count, sum, min and max."""
        rule = next(r for r in self.rules if r.id == rule_id)
        return {group: {b: tuple(row) for b, row in rows.items()} for group, rows in self._rows(rule).items()}

    def _bucketed(self, rule: ResolvedRule, times: list[int]) -> dict[Group, list[tuple[int, float | None]]]:
        """Signals that compose across minute buckets: counts, ratios, change, absence, sum/avg/min/max."""
        first_ms, _ = self.span()
        if self.data_start_ms is not None and (first_ms is None or self.data_start_ms < first_ms):
            first_ms = self.data_start_ms
        return bucketed_values(rule, self._rows(rule), times, self.semantics, first_ms)

    def _windowed(self, rule: ResolvedRule, times: list[int]) -> dict[Group, list[tuple[int, float | None]]]:
        """Percentiles and distinct counts, from each bucket's values, window by window."""
        signal = rule.rule.signal
        assert isinstance(signal, MeasureSignal | CardinalitySignal)
        window_ms, delay_ms = evaluation_window_ms(rule, self.semantics)
        offset_ms = delay_ms % MINUTE_MS
        window_buckets = window_ms // MINUTE_MS
        buckets = self._rows(rule)
        if not rule.rule.group_by:
            buckets.setdefault((), {})
        if isinstance(signal, CardinalitySignal):
            steps = self._distinct_changes(rule, window_buckets)
        else:
            quantiles = self._window_quantiles(rule, window_buckets, signal.aggregation.percentile or 50)
        out: dict[Group, list[tuple[int, float | None]]] = {}
        for group, by_bucket in buckets.items():
            events = _Buckets(by_bucket)
            # A group is seen from the first window holding an event of it (a group-less rule: always).
            seen = not rule.rule.group_by
            series: list[tuple[int, float | None]] = []
            changes = steps.get(group, []) if isinstance(signal, CardinalitySignal) else []
            taken, held = 0, 0
            for at_ms in times:
                end = (at_ms - delay_ms - offset_ms) // MINUTE_MS
                seen = seen or events.count(end - window_buckets, end) > 0
                if isinstance(signal, CardinalitySignal):
                    while taken < len(changes) and changes[taken][0] <= end:
                        held += changes[taken][1]
                        taken += 1
                    value: float | None = float(held)
                else:
                    value = quantiles.get((group, end))
                if seen:
                    series.append((at_ms, value))
            out[group] = series
        return out

    def _window_quantiles(
        self, rule: ResolvedRule, window_buckets: int, percentile: int
    ) -> dict[tuple[Group, int], float]:
        """The percentile of each window (by group and window end, in buckets) holding a value. Datadog
        semantics: DuckDB's ``quantile_cont``, linear interpolation between the two nearest ranks.
        Splunk semantics: limits.conf's default ``perc_method = nearest-rank``, "the number with
        0-based rank R = floor((percentile/100)*count)" (clamped to the last). Both providers only
        approximate these exact values (DDSketch; Splunk's default ``perc_digest_type = tdigest``).
        Each bucket's values are counted once, copied to the windows they fall in, and ranked there."""
        keys = self._rule_aggregates[rule.id].keys
        by = "".join(f"{group}, " for group in keys.groups)
        fraction = percentile / 100
        nearest_rank = self.semantics == "splunk"
        if nearest_rank:  # integer arithmetic: 0.29 * 100 is not 29 in floating point
            low_rank = high_rank = f"least(n * {percentile} // 100, n - 1)"
        else:
            low_rank, high_rank = f"floor((n - 1) * {fraction!r})", f"ceil((n - 1) * {fraction!r})"
        query = (
            f"WITH bucket_values AS (SELECT {by}b, value, sum(c) AS c FROM ({self._bucket_values(keys)}) "
            "GROUP BY ALL), "
            f"windows AS (SELECT {by}b + k AS e, value, sum(c) AS c FROM bucket_values "
            f"CROSS JOIN range(1, {window_buckets + 1}) AS steps(k) GROUP BY ALL), "
            f"ranked AS (SELECT {by}e, value, sum(c) OVER (PARTITION BY {by}e ORDER BY value "
            f"ROWS UNBOUNDED PRECEDING) AS upto, sum(c) OVER (PARTITION BY {by}e) AS n FROM windows) "
            f"SELECT {by}e, any_value(n), min(value) FILTER (WHERE upto > {low_rank}), "
            f"min(value) FILTER (WHERE upto > {high_rank}) FROM ranked GROUP BY ALL"
        )
        width = len(keys.groups)
        found: dict[tuple[Group, int], float] = {}
        for row in self.db.execute(query).fetchall():
            group = _group(rule, row[:width])
            events, low, high = int(row[width + 1]), float(row[width + 2]), float(row[width + 3])
            position = (events - 1) * fraction
            weight = 0.0 if nearest_rank else position - math.floor(position)
            found[group, int(row[width])] = low + (high - low) * weight
        return found

    def _distinct_changes(self, rule: ResolvedRule, window_buckets: int) -> dict[Group, list[tuple[int, int]]]:
        """How the distinct count changes, per group, from one window end (in buckets) to the next.

        A value counts in the windows ending after its latest bucket ``b`` before them, up to its next
        bucket and at most ``window_buckets`` later: +1 at ``b + 1``, -1 after ``min(next, b + window)``.
        Summed in DuckDB, this leaves a few rows per group however many values there are."""
        keys = self._rule_aggregates[rule.id].keys
        by = "".join(f"{group}, " for group in keys.groups)
        query = (
            f"WITH seen AS (SELECT DISTINCT {by}b, value FROM ({self._bucket_values(keys)})), "
            f"spans AS (SELECT {by}b, lead(b) OVER (PARTITION BY {by}value ORDER BY b) AS next FROM seen) "
            f"SELECT {by}e, sum(d) FROM (SELECT {by}b + 1 AS e, 1 AS d FROM spans UNION ALL "
            f"SELECT {by}least(coalesce(next, b + {window_buckets}), b + {window_buckets}) + 1 AS e, -1 AS d "
            "FROM spans) GROUP BY ALL ORDER BY e"
        )
        width = len(keys.groups)
        found: dict[Group, list[tuple[int, int]]] = {}
        for row in self.db.execute(query).fetchall():
            group = _group(rule, row[:width])
            found.setdefault(group, []).append((int(row[width]), int(row[width + 1])))
        return found


class _Buckets:
    """One group's bucket rows, for sums over windows of buckets."""

    def __init__(self, by_bucket: Mapping[int, Sequence[Any]]) -> None:
        self.keys = sorted(by_bucket)
        self.rows = [by_bucket[key] for key in self.keys]
        # Running totals of the event count (integers, so differences are exact).
        self.counts = [0]
        for row in self.rows:
            self.counts.append(self.counts[-1] + int(row[0]))

    def span(self, start: int, end: int) -> tuple[int, int]:
        return bisect.bisect_left(self.keys, start), bisect.bisect_left(self.keys, end)

    def count(self, start: int, end: int) -> int:
        low, high = self.span(start, end)
        return self.counts[high] - self.counts[low]

    def column(self, index: int, start: int, end: int) -> list[Any]:
        low, high = self.span(start, end)
        return [row[index] for row in self.rows[low:high] if row[index] is not None]

    def last_before(self, end: int) -> int | None:
        position = bisect.bisect_left(self.keys, end)
        return self.keys[position - 1] if position else None


def bucketed_values(
    rule: ResolvedRule,
    buckets: Mapping[Group, Mapping[int, Sequence[Any]]],
    times: Sequence[int],
    semantics: Semantics,
    first_ms: int | None,
) -> dict[Group, list[tuple[int, float | None]]]:
    """The values of a rule whose signal composes across minute buckets (counts, ratios, change,
    absence, sum/avg/min/max) at each evaluation time, per group, from its buckets (see
    :meth:`extalerts.engine.Engine.bucket_rows`); ``first_ms``: when the data begins (a change's
    baseline reaching back before it is unknown). Shared by the engine and ``extalerts verify``'s
    provider sides."""
    signal = rule.rule.signal
    window_ms, delay_ms = evaluation_window_ms(rule, semantics)
    offset_ms = delay_ms % MINUTE_MS
    buckets = {group: dict(rows) for group, rows in buckets.items()}
    first_seen = {group: min(by_bucket) for group, by_bucket in buckets.items()}
    # Expected groups are Splunk's alone: a Datadog monitor cannot know a group it never saw.
    expected = signal.expected if isinstance(signal, AbsenceSignal) and semantics == "splunk" else []
    if expected and len(rule.rule.group_by) == 1:
        for value in expected:
            expected_group: Group = ((rule.rule.group_by[0], value),)
            buckets.setdefault(expected_group, {})
            first_seen[expected_group] = -(2**62)
    if not rule.rule.group_by:
        # One state for all events, judged from the first full window of the data (the input's
        # first event), not from the rule's first event: a rule firing on silence or on a low
        # count must see the silence before its own events begin.
        buckets.setdefault((), {})
        first_seen[()] = -(2**62)
    window_buckets = window_ms // MINUTE_MS
    shift_buckets = signal.compare_to // 60 if isinstance(signal, ChangeSignal) else 0
    # A baseline window that reaches back before the data began is unknown, not empty.
    data_start = (first_ms - offset_ms) // MINUTE_MS if first_ms is not None else 0
    out: dict[Group, list[tuple[int, float | None]]] = {}
    for group, by_bucket in buckets.items():
        window = _Buckets(by_bucket)
        series: list[tuple[int, float | None]] = []
        for at_ms in times:
            end = (at_ms - delay_ms - offset_ms) // MINUTE_MS  # exclusive
            start = end - window_buckets
            if first_seen[group] >= end:
                continue  # the group has not appeared yet
            if isinstance(signal, AbsenceSignal) and rule.rule.group_by:
                last_seen = window.last_before(end)
                if last_seen is not None and last_seen < end - signal.lookback // 60:
                    continue  # silent for longer than the lookback: forgotten, as in Splunk
            if shift_buckets and start - shift_buckets < data_start:
                series.append((at_ms, None))
                continue
            series.append((at_ms, _bucket_value(rule, window, start, end, shift_buckets)))
        if series:
            out[group] = series
    return out


def _bucket_value(rule: ResolvedRule, window: _Buckets, start: int, end: int, shift: int) -> float | None:
    signal = rule.rule.signal
    count = window.count(start, end)
    if isinstance(signal, CountSignal | AbsenceSignal):
        return float(count)
    if isinstance(signal, RatioSignal):
        matching = sum(int(v) for v in window.column(1, start, end))
        return 100.0 * matching / count if count >= max(signal.min_events, 1) else None
    if isinstance(signal, ChangeSignal):
        previous = window.count(start - shift, end - shift)
        return 100.0 * (count - previous) / previous if previous > 0 else None
    assert isinstance(signal, MeasureSignal)
    present = sum(int(v) for v in window.column(1, start, end))
    if present == 0:
        return None
    if signal.aggregation is Aggregation.SUM:
        return float(sum(window.column(2, start, end)))
    if signal.aggregation is Aggregation.AVG:
        return float(sum(window.column(2, start, end))) / present
    if signal.aggregation is Aggregation.MIN:
        return float(min(window.column(3, start, end)))
    return float(max(window.column(4, start, end)))


def ceil_minute(ms: int) -> int:
    """``ms`` rounded up to a minute boundary, where evaluations run."""
    return -(-ms // MINUTE_MS) * MINUTE_MS


def schedule_minutes(rule: ResolvedRule, semantics: Semantics) -> int:
    """Minutes between two evaluations of ``rule``: 1 under Datadog's, the rendered cron's under Splunk's,
    the alert's "Check alert every" under Cloudflare's."""
    from extalerts.render.splunk_schedule import schedule_period_minutes

    if semantics == "cloudflare":
        return observability_timings.timings_for(rule).check_every_minutes
    return schedule_period_minutes(rule.rule.window) if semantics == "splunk" else 1


def evaluation_window_ms(rule: ResolvedRule, semantics: Semantics) -> tuple[int, int]:
    """The window each evaluation of ``rule`` reads and how long before the evaluation it ends, in ms.
    Under Cloudflare's semantics the window is the alert's "Include data from the last", and nothing
    delays it: the alerts page documents no delay for Workers Logs."""
    if semantics == "cloudflare":
        return observability_timings.timings_for(rule).lookback_minutes * MINUTE_MS, 0
    return rule.rule.window * 1000, rule.evaluation_delay * 1000
