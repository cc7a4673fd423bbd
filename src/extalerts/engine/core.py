"""The engine: the scan into partials, the merge, windows, state machines and notifications, in one object."""

from __future__ import annotations

from collections.abc import Sequence

from extalerts import observability_timings
from extalerts.engine import observability
from extalerts.engine.notifications import notifications
from extalerts.engine.results import (
    BadLine,
    EngineError,
    EngineResult,
    RuleResult,
    Semantics,
    State,
    Transition,
)
from extalerts.engine.scan import Scan
from extalerts.engine.staging import _Columns
from extalerts.engine.states import _StateMachine
from extalerts.engine.windows import Windows
from extalerts.filter.ast import Expr
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.wording import plural


class Engine(Scan, Windows):
    """Load events once, then evaluate any rules of the spec over them."""

    def __init__(
        self,
        spec: Spec,
        *,
        rules: Sequence[str] | None = None,
        semantics: Semantics = "datadog",
        memory_limit: str = "1GB",
        threads: int | None = None,
        shipped: Expr | None = None,
    ) -> None:
        """``shipped``: the filter of the Logpush job feeding the provider; rules then see only the
        events it ships, as the provider would (None: every event)."""
        import duckdb

        self.spec = spec
        self.shipped = shipped
        self.semantics = semantics
        self.rules = [r for r in spec.rules if rules is None or r.id in rules]
        unknown = set(rules or ()) - {r.id for r in self.rules}
        if unknown:
            raise EngineError(f"{plural(len(unknown), 'unknown rule')}: {', '.join(sorted(unknown))}")
        #: Under Cloudflare's semantics, the rules Option A does not carry, and why: never evaluated.
        self.not_carried: dict[str, str] = {}
        if semantics == "cloudflare":
            for rule in self.rules:
                reason = observability.not_carried_by_option_a(rule, spec)
                if reason is not None:
                    self.not_carried[rule.id] = reason
            self.rules = [r for r in self.rules if r.id not in self.not_carried]
        # Insertion order is not needed (events are located by time), and keeping it costs memory.
        try:
            self.db = duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": False})
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            raise EngineError(f"memory limit {memory_limit!r}: {message}; write it like 512MB or 4GB") from None
        # DuckDB tracks a query's progress (read by `load`'s on_progress) but must never draw its bar:
        # it would land on stdout, into `--output json`.
        self.db.execute("SET enable_progress_bar = true")
        self.db.execute("SET enable_progress_bar_print = false")
        if threads:
            self.db.execute(f"SET threads = {int(threads)}")
        self.columns = _Columns(self._column_names())
        self.events = 0
        self.bad_line_count = 0
        self.bad_lines: list[BadLine] = []
        #: What the reading worked around and the user should know (a truncated archive).
        self.warnings: list[str] = []
        #: Inputs read the exact way because the typed columns could not hold them.
        self.exact_reads = 0
        #: Each input file's first and last event time, to find the files holding time outliers.
        self._file_spans: dict[str, tuple[int, int]] = {}
        #: Events left out of the evaluation because their times are far from all the others.
        self.time_outlier_count = 0
        #: Per field read with a value of another JSON type: how many, and the first (file, line).
        self.type_mismatches: dict[str, tuple[int, tuple[str, int] | None]] = {}
        self._loaded = False
        self._plan()

    def evaluate(self, *, start_ms: int | None = None, end_ms: int | None = None) -> EngineResult:
        """Evaluate every rule. Without ``start_ms``/``end_ms`` the evaluations cover the input: from
        the first full window to the first evaluation whose window ends after the last event."""
        first, last = self.span()
        results: dict[str, RuleResult] = {}
        for rule in self.rules:
            results[rule.id] = self._evaluate_rule(rule, first, last, start_ms, end_ms)
        warnings = [*self.warnings, *self.type_warnings()]
        cloudflare = self.semantics == "cloudflare"
        timings = {r.id: observability_timings.timings_for(r) for r in self.rules} if cloudflare else {}
        return EngineResult(
            results,
            self.events,
            self.bad_lines,
            self.bad_line_count,
            first,
            last,
            self.semantics,
            warnings,
            dict(self.not_carried),
            timings,
        )

    def _evaluate_rule(
        self, rule: ResolvedRule, first: int | None, last: int | None, start_ms: int | None, end_ms: int | None
    ) -> RuleResult:
        times = self._evaluation_times(rule, first, last, start_ms, end_ms)
        result = RuleResult(rule.id, evaluations=len(times), until_ms=times[-1] if times else None)
        if not times:
            return result
        values = self._values(rule, times)
        if self.semantics == "cloudflare":
            observability.run_alert(rule, result, values)
            return result
        machine = _StateMachine(rule, self.semantics)
        for group in sorted(values):
            series = values[group]
            result.series[group] = series
            state = State.OK
            for at_ms, value in series:
                new_state = machine.next(state, value)
                if new_state is not state:
                    result.transitions.append(Transition(at_ms, group, state, new_state, value))
                    state = new_state
        result.transitions.sort(key=lambda t: (t.at_ms, t.group))
        result.notifications = notifications(rule, result, self.semantics)
        if self.semantics == "splunk":
            result.warning_notifications = notifications(rule, result, self.semantics, State.WARN)
        return result
