"""Replay of every ``monitors/`` rule over a synthesised Logpush file, against bare scans of the same file.

One file of Workers Trace Events (plain NDJSON, about N events, with a few incidents so that rules
fire) is generated once with ``extalerts.synth``; its generation time is reported on its own. Then,
each in a fresh process so that its peak memory is its own:

1. the replay: ``load_spec(monitors/)``, ``Engine(spec, memory_limit="1GB")``, ``load([file])`` and
   ``evaluate()``; timed from ``load`` to the end of ``evaluate`` (imports and the spec are listed apart);
2. baseline A, DuckDB merely counting the file: ``SELECT count(*) FROM read_json(...)`` with the
   ``columns=`` and options the engine reads with (``Engine._read_json``), so a like-for-like bare scan;
   with ``read_json_auto`` (schema inferred) and a scan that materialises the same columns into a
   table, for reference only;
3. baseline B, ``jq`` filtering the file once, when jq is installed (nothing is installed if not).

Every measurement runs ``repeats`` times, interleaved round by round; the ratios use the best run and
the peak memory is the largest seen. Peak memory is ``getrusage().ru_maxrss`` read in the fresh
process: ``RUSAGE_SELF`` of the Python child for extalerts and DuckDB (the interpreter and its imports
included), ``RUSAGE_CHILDREN`` of a Python wrapper whose only child is jq. Goals are reported, never
asserted.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extalerts.filter.duckdb import JSON_COLUMNS, SCALAR_COLUMNS, quote_identifier
from extalerts.synth import Scenario, SynthConfig, events, generate
from layout import goal_line, ratio, table

DEFAULT_EVENTS = 1_000_000
#: The size the memory goal is judged at (``run.py`` passes it with a flag).
FULL_EVENTS = 10_000_000
REPEATS = 3
REQUESTS_PER_MINUTE = 2000
#: Below this many minutes the requests per minute are lowered instead, so the incidents still fit.
MIN_MINUTES = 60
CALIBRATION_MINUTES = 10
MEMORY_LIMIT = "1GB"
JQ_FILTER = 'select(.Outcome != "ok")'
MONITORS = Path(__file__).resolve().parent.parent / "monitors"

#: Goals (issue #18): replay at most 3.5× the bare DuckDB scan of one file of a million events, at most
#: 4× at ten million with a peak under 1 GiB; and more than 20× faster than jq.
SCAN_RATIO_GOAL = 3.5
FULL_SCAN_RATIO_GOAL = 4.0
JQ_SPEEDUP_GOAL = 20.0
MEMORY_GOAL_BYTES = 1024**3
MEMORY_GOAL_EVENTS = FULL_EVENTS

#: Incidents: (scenario, start as a share of the run, minutes, the rule of monitors/ it makes fire).
#: None of them changes the volume much, so the file stays close to the events asked for.
INCIDENTS: tuple[tuple[str, float, int, str], ...] = (
    ("exception-storm", 0.20, 4, "worker-exception"),
    ("invalid-url-flood", 0.35, 10, "invalid-url-flood"),
    ("do-errors", 0.50, 5, "do-operation-errors"),
    ("do-latency-spike", 0.65, 5, "do-latency-p99"),
    ("tool-mapping-failures", 0.80, 5, "tool-mapping-failures"),
)

MEMORY_METHOD = (
    "getrusage ru_maxrss in a fresh process per run: RUSAGE_SELF of the Python child for extalerts and "
    "DuckDB (interpreter and imports included), RUSAGE_CHILDREN of a Python wrapper around jq"
)

# --------------------------------------------------------------------------------------------- child processes

# Each child prints one JSON object on its last line of output; ``peak`` is in bytes (ru_maxrss is in
# KiB on Linux, in bytes on macOS).
_PRELUDE = """\
import json, resource, sys, time
def peak(who):
    return resource.getrusage(who).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
"""

_REPLAY_CHILD = (
    _PRELUDE
    + """\
started = time.perf_counter()
from extalerts.engine import Engine
from extalerts.spec import load_spec
imported = time.perf_counter()
spec = load_spec([sys.argv[1]])
engine = Engine(spec, memory_limit=sys.argv[3])
ready = time.perf_counter()
engine.load([sys.argv[2]])
loaded = time.perf_counter()
result = engine.evaluate()
done = time.perf_counter()
print(json.dumps({
    "seconds": done - ready,
    "imports": imported - started,
    "spec": ready - imported,
    "load": loaded - ready,
    "evaluate": done - loaded,
    "events": result.events,
    "bad_lines": result.bad_line_count,
    "exact_reads": engine.exact_reads,
    "kept_values": engine.kept_values(),
    "rules": len(result.rules),
    "fired": sorted(rule_id for rule_id, rule in result.rules.items() if rule.intervals()),
    "peak": peak(resource.RUSAGE_SELF),
}))
"""
)

#: argv: the timed query, the memory limit, and for a query that returns no count, one counting what it read.
_SCAN_CHILD = (
    _PRELUDE
    + """\
import duckdb
db = duckdb.connect(config={"memory_limit": sys.argv[2]})
db.execute("SET enable_progress_bar = false")
started = time.perf_counter()
result = db.execute(sys.argv[1]).fetchall()
done = time.perf_counter()
rows = db.execute(sys.argv[3]).fetchone()[0] if len(sys.argv) > 3 else result[0][0]
print(json.dumps({"seconds": done - started, "rows": rows, "peak": peak(resource.RUSAGE_SELF)}))
"""
)

_JQ_CHILD = (
    _PRELUDE
    + """\
import subprocess
started = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
done = time.perf_counter()
print(json.dumps({"seconds": done - started, "peak": peak(resource.RUSAGE_CHILDREN)}))
"""
)


def _child(script: str, args: Sequence[str], cwd: Path) -> tuple[float, dict[str, Any]]:
    """Run ``script`` in a fresh interpreter; its wall time from the outside and the JSON it printed.
    The working directory is the temporary one, so that anything DuckDB spills is removed with it."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-10:])
        raise SystemExit(f"bench replay: a measurement failed (exit {completed.returncode}):\n{tail}")
    # The report is the last line; anything before a carriage return on it is terminal noise.
    lines = completed.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"bench replay: a measurement printed nothing:\n{completed.stderr.strip()[-800:]}")
    report: dict[str, Any] = json.loads(lines[-1].rsplit("\r", 1)[-1])
    return seconds, report


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Synthesis:
    """The generated file."""

    events: int
    minutes: int
    requests_per_minute: int
    scenarios: tuple[str, ...]
    file_bytes: int
    seconds: float


@dataclass(frozen=True)
class Measurement:
    """Repeated runs of one thing, each in a fresh process: the timed work, the process wall time
    (interpreter start-up and imports included), and the largest peak RSS of the runs."""

    seconds: tuple[float, ...]
    process_seconds: tuple[float, ...]
    peak_bytes: int

    @property
    def best(self) -> float:
        return min(self.seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "samples_s": list(self.seconds),
            "min_s": self.best,
            "process_samples_s": list(self.process_seconds),
            "peak_rss_bytes": self.peak_bytes,
        }


@dataclass(frozen=True)
class ReplayRun:
    """The replay: the timed work is ``load`` + ``evaluate``; the stages are those of its best run."""

    measurement: Measurement
    imports_seconds: float
    spec_seconds: float
    load_seconds: float
    evaluate_seconds: float
    events: int
    bad_lines: int
    #: Inputs read again the exact way (0: the typed reading held the whole file).
    exact_reads: int
    #: Values the percentile and distinct-count rules keep (what grows with the input).
    kept_values: int
    rules: int
    fired: tuple[str, ...]

    @property
    def events_per_second(self) -> float:
        return self.events / self.measurement.best


@dataclass(frozen=True)
class ReplayBench:
    synthesis: Synthesis
    replay: ReplayRun
    #: Baseline A: ``count(*)`` over ``read_json`` with the engine's columns; the ratio's baseline.
    scan: Measurement
    #: For reference: ``count(*)`` over ``read_json_auto``, and the same columns materialised into a table.
    scan_auto: Measurement
    scan_table: Measurement
    scan_columns: Measurement
    #: Baseline B: None when jq is not installed.
    jq: Measurement | None
    repeats: int
    threads: int
    duckdb_version: str

    @property
    def scan_ratio(self) -> float:
        """Replay over the bare scan (goal: at most :data:`SCAN_RATIO_GOAL`)."""
        return self.replay.measurement.best / self.scan.best

    @property
    def jq_speedup(self) -> float | None:
        """jq over replay (goal: more than :data:`JQ_SPEEDUP_GOAL`); None without jq."""
        return None if self.jq is None else self.jq.best / self.replay.measurement.best

    @property
    def scan_ratio_goal(self) -> float:
        """The ratio goal for this file's size: :data:`FULL_SCAN_RATIO_GOAL` at ten million events."""
        return FULL_SCAN_RATIO_GOAL if self.synthesis.events >= MEMORY_GOAL_EVENTS * 0.99 else SCAN_RATIO_GOAL

    @property
    def scan_goal_met(self) -> bool:
        return self.scan_ratio <= self.scan_ratio_goal

    @property
    def jq_goal_met(self) -> bool | None:
        """None: not judged (jq is not installed)."""
        speedup = self.jq_speedup
        return None if speedup is None else speedup > JQ_SPEEDUP_GOAL

    @property
    def memory_goal_met(self) -> bool | None:
        """None: not judged (the goal is for :data:`MEMORY_GOAL_EVENTS` events; this file is smaller)."""
        if self.synthesis.events < MEMORY_GOAL_EVENTS * 0.99:
            return None
        return self.replay.measurement.peak_bytes < MEMORY_GOAL_BYTES

    @property
    def goal_met(self) -> bool:
        """Every goal judged in this run is met (jq without jq, and memory below 10M events, are not judged)."""
        judged = (self.scan_goal_met, self.jq_goal_met, self.memory_goal_met)
        return all(verdict for verdict in judged if verdict is not None)


# --------------------------------------------------------------------------------------------- the file


def _events_per_minute(requests_per_minute: int) -> float:
    config = SynthConfig(minutes=CALIBRATION_MINUTES, requests_per_minute=requests_per_minute)
    return sum(1 for _ in events(config)) / CALIBRATION_MINUTES


def synth_config(target: int) -> SynthConfig:
    """Minutes and requests per minute for about ``target`` events, with :data:`INCIDENTS` placed in the run.
    The events a minute are measured on a short run of the same traffic, not assumed."""
    rpm = REQUESTS_PER_MINUTE
    per_minute = _events_per_minute(rpm)
    if target / per_minute < MIN_MINUTES:
        rpm = max(1, round(rpm * target / (per_minute * MIN_MINUTES)))
        per_minute = _events_per_minute(rpm)
    minutes = max(MIN_MINUTES, round(target / per_minute))
    scenarios = tuple(Scenario(name, int(minutes * share), length) for name, share, length, _ in INCIDENTS)
    return SynthConfig(minutes=minutes, requests_per_minute=rpm, scenarios=scenarios)


def expected_rules() -> tuple[str, ...]:
    return tuple(sorted({rule for *_, rule in INCIDENTS}))


# --------------------------------------------------------------------------------------------- queries


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def engine_columns() -> dict[str, str]:
    """The columns the engine reads ``monitors/`` with: its typed reading (the exact one if none)."""
    from extalerts.engine import Engine
    from extalerts.spec import load_spec

    typed = Engine(load_spec([MONITORS])).typed_columns()
    return typed or {**SCALAR_COLUMNS, **dict.fromkeys(JSON_COLUMNS, "JSON")}


def engine_read_json(file: Path) -> str:
    """``read_json`` with the columns and options the engine reads ``monitors/`` with, so the count is a
    like-for-like bare scan."""
    spec = ", ".join(f"{quote_identifier(name)}: '{kind}'" for name, kind in engine_columns().items())
    return (
        f"read_json({_sql_string(str(file))}, format='newline_delimited', ignore_errors=true, "
        f"maximum_object_size=16777216, columns={{{spec}}})"
    )


def scan_query(file: Path) -> str:
    return f"SELECT count(*) FROM {engine_read_json(file)}"  # noqa: S608 - the path is quoted


def scan_auto_query(file: Path) -> str:
    return f"SELECT count(*) FROM read_json_auto({_sql_string(str(file))})"  # noqa: S608 - the path is quoted


def scan_columns_query(file: Path) -> str:
    """Every column the engine reads, read and counted: the scan with nothing done with what it read."""
    counts = ", ".join(f"count({quote_identifier(name)})" for name in engine_columns())
    return f"SELECT count(*), {counts} FROM {engine_read_json(file)}"  # noqa: S608 - the path is quoted


def scan_table_query(file: Path) -> str:
    return f"CREATE TEMP TABLE t AS SELECT * FROM {engine_read_json(file)}"  # noqa: S608 - the path is quoted


TABLE_COUNT = "SELECT count(*) FROM t"


def jq_argv(jq: str, file: Path) -> list[str]:
    return [jq, "-c", JQ_FILTER, str(file)]


# --------------------------------------------------------------------------------------------- bench


def _measurement(runs: Sequence[tuple[float, dict[str, Any]]]) -> Measurement:
    return Measurement(
        seconds=tuple(float(report["seconds"]) for _, report in runs),
        process_seconds=tuple(seconds for seconds, _ in runs),
        peak_bytes=max(int(report["peak"]) for _, report in runs),
    )


def _replay_run(runs: Sequence[tuple[float, dict[str, Any]]]) -> ReplayRun:
    best = min((report for _, report in runs), key=lambda report: float(report["seconds"]))
    return ReplayRun(
        measurement=_measurement(runs),
        imports_seconds=float(best["imports"]),
        spec_seconds=float(best["spec"]),
        load_seconds=float(best["load"]),
        evaluate_seconds=float(best["evaluate"]),
        events=int(best["events"]),
        bad_lines=int(best["bad_lines"]),
        exact_reads=int(best["exact_reads"]),
        kept_values=int(best["kept_values"]),
        rules=int(best["rules"]),
        fired=tuple(best["fired"]),
    )


def _check_rows(kind: str, runs: Sequence[tuple[float, dict[str, Any]]], expected: int) -> None:
    for _, report in runs:
        if int(report["rows"]) != expected:
            raise SystemExit(f"bench replay: the {kind} counted {report['rows']:,} events, the file has {expected:,}")


def _duckdb_version(cwd: Path) -> str:
    script = "import duckdb, json; print(json.dumps({'version': duckdb.__version__}))"
    return str(_child(script, [], cwd)[1]["version"])


def bench(events: int = DEFAULT_EVENTS, *, repeats: int = REPEATS) -> ReplayBench:
    """Generate about ``events`` events, then time the replay and its baselines ``repeats`` times each."""
    config = synth_config(events)
    jq = shutil.which("jq")
    with tempfile.TemporaryDirectory(prefix="extalerts-bench-replay-") as tmp:
        directory = Path(tmp)
        file = directory / "events.ndjson"
        started = time.perf_counter()
        stats = generate(config, file)
        synthesis = Synthesis(
            events=stats.events,
            minutes=config.minutes,
            requests_per_minute=config.requests_per_minute,
            scenarios=tuple(str(s) for s in config.scenarios),
            file_bytes=file.stat().st_size,
            seconds=time.perf_counter() - started,
        )
        replays: list[tuple[float, dict[str, Any]]] = []
        scans: list[tuple[float, dict[str, Any]]] = []
        autos: list[tuple[float, dict[str, Any]]] = []
        tables: list[tuple[float, dict[str, Any]]] = []
        columns: list[tuple[float, dict[str, Any]]] = []
        jqs: list[tuple[float, dict[str, Any]]] = []
        for _ in range(repeats):
            replays.append(_child(_REPLAY_CHILD, [str(MONITORS), str(file), MEMORY_LIMIT], directory))
            scans.append(_child(_SCAN_CHILD, [scan_query(file), MEMORY_LIMIT], directory))
            autos.append(_child(_SCAN_CHILD, [scan_auto_query(file), MEMORY_LIMIT], directory))
            tables.append(_child(_SCAN_CHILD, [scan_table_query(file), MEMORY_LIMIT, TABLE_COUNT], directory))
            columns.append(_child(_SCAN_CHILD, [scan_columns_query(file), MEMORY_LIMIT], directory))
            if jq is not None:
                jqs.append(_child(_JQ_CHILD, jq_argv(jq, file), directory))
        duckdb_version = _duckdb_version(directory)
    replay = _replay_run(replays)
    if replay.events != synthesis.events:
        raise SystemExit(f"bench replay: the engine loaded {replay.events:,} events, the file has {synthesis.events:,}")
    _check_rows("read_json scan", scans, synthesis.events)
    _check_rows("read_json_auto scan", autos, synthesis.events)
    _check_rows("scan into a table", tables, synthesis.events)
    _check_rows("scan of the engine's columns", columns, synthesis.events)
    return ReplayBench(
        synthesis=synthesis,
        replay=replay,
        scan=_measurement(scans),
        scan_auto=_measurement(autos),
        scan_table=_measurement(tables),
        scan_columns=_measurement(columns),
        jq=_measurement(jqs) if jqs else None,
        repeats=repeats,
        threads=os.cpu_count() or 1,
        duckdb_version=duckdb_version,
    )


# --------------------------------------------------------------------------------------------- report


def _seconds(value: float) -> str:
    return f"{value:,.2f} s"


def _mib(value: int) -> str:
    return f"{value / 1024**2:,.0f} MiB"


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=104, initial_indent="   ", subsequent_indent="   ", break_on_hyphens=False)


def section(result: ReplayBench) -> str:
    s, r = result.synthesis, result.replay
    replay_s = r.measurement.best

    def row(label: str, m: Measurement, versus: str) -> list[str]:
        return [
            label,
            _seconds(m.best),
            _seconds(max(m.process_seconds)),
            f"{s.events / m.best:,.0f}",
            _mib(m.peak_bytes),
            versus,
        ]

    rows = [
        row("extalerts replay: load + evaluate", r.measurement, ratio(replay_s, result.scan.best)),
        row("A: DuckDB count(*), engine's read_json", result.scan, "1.0×"),
        row("   ref: count(*) over read_json_auto", result.scan_auto, ratio(result.scan_auto.best, result.scan.best)),
        row(
            "   ref: same columns, each counted", result.scan_columns, ratio(result.scan_columns.best, result.scan.best)
        ),
        row("   ref: same columns into a table", result.scan_table, ratio(result.scan_table.best, result.scan.best)),
    ]
    if result.jq is not None:
        rows.append(row(f"B: jq -c '{JQ_FILTER}'", result.jq, ratio(result.jq.best, result.scan.best)))
    stages = [
        ["  imports (not timed)", _seconds(r.imports_seconds)],
        ["  load_spec + Engine() (not timed)", _seconds(r.spec_seconds)],
        ["  Engine.load([file])", _seconds(r.load_seconds)],
        ["  Engine.evaluate()", _seconds(r.evaluate_seconds)],
        ["  inputs read again the exact way", str(r.exact_reads)],
        ["  values kept for percentiles and distinct counts", f"{r.kept_values:,}"],
    ]
    expected = expected_rules()
    missing = sorted(set(expected) - set(r.fired))
    surprise = sorted(set(r.fired) - set(expected))
    sanity = "as expected" if not missing and not surprise else f"missing {missing}, unexpected {surprise}"
    jq_line = (
        f"B: jq is not installed ({JQ_FILTER!r} not measured; nothing was installed)."
        if result.jq is None
        else f"B: `jq -c '{JQ_FILTER}' FILE > /dev/null`, one pass filtering the failures."
    )
    speedup = result.jq_speedup
    jq_detail = "jq not installed" if speedup is None else f"jq / replay = {speedup:,.1f}×"
    memory_detail = f"peak {_mib(r.measurement.peak_bytes)} at {s.events:,} events"
    if result.memory_goal_met is None:
        memory_detail += f"; judged at {MEMORY_GOAL_EVENTS:,}"
    lines = [
        "4. Replay",
        _paragraph(
            f"Input: {s.events:,} synthesised Workers Trace Events in one plain NDJSON file "
            f"({s.file_bytes / 1e6:,.0f} MB; {s.minutes:,} minutes at {s.requests_per_minute:,} requests a minute; "
            f"incidents {', '.join(s.scenarios)}). Generating it took {_seconds(s.seconds)} "
            "(extalerts.synth.generate; not part of the comparison); the file then sits in the page cache, "
            "so every run reads it warm."
        ),
        _paragraph(
            f"Each run is a fresh process, {result.repeats} {'run' if result.repeats == 1 else 'runs'} of each, "
            'interleaved: "best" is the fastest run\'s timed work and the one the ratios use, "process" the '
            'slowest run\'s whole process (interpreter start-up and imports included), "peak RSS" the largest '
            f"of the runs. Peak RSS: {MEMORY_METHOD}. DuckDB {result.duckdb_version} with its default threads "
            f"({result.threads} CPUs), Python {platform.python_version()}."
        ),
        _paragraph(
            f"Replay: load_spec(monitors/), Engine(spec, memory_limit={MEMORY_LIMIT!r}), load([file]), "
            "evaluate(); timed from load to the end of evaluate. A: DuckDB merely counting the file, with the "
            'columns= and options the engine reads with: the bare scan replay cannot avoid. The "ref" rows '
            "are for reference only: count(*) over read_json_auto (schema inferred); count() of every column "
            "the engine reads (the scan when it must hand over those values, doing nothing with them); and "
            "CREATE TEMP TABLE of those columns (the scan plus materialising what it read). " + jq_line
        ),
        "",
        table(["run", "best", "process", "events/s", "peak RSS", "vs A"], rows),
        "",
        "   Replay stages (best run):",
        "",
        table(["stage", "time"], stages),
        "",
        _paragraph(
            f"Rules fired: {len(r.fired)} of {r.rules} ({', '.join(r.fired) or 'none'}); "
            f"the incidents target {len(expected)}: {sanity}."
        ),
        "",
        goal_line(
            f"replay at most {result.scan_ratio_goal:g}× the bare DuckDB scan at {s.events / 1e6:,.0f}M events",
            result.scan_goal_met,
            f"{result.scan_ratio:,.1f}×",
        ),
        goal_line(f"replay more than {JQ_SPEEDUP_GOAL:g}× faster than jq", result.jq_goal_met, jq_detail),
        goal_line(
            f"replay peak under {MEMORY_GOAL_BYTES / 1024**3:g} GiB at {MEMORY_GOAL_EVENTS / 1e6:g}M events",
            result.memory_goal_met,
            memory_detail,
        ),
    ]
    return "\n".join(lines)


def as_json(result: ReplayBench) -> dict[str, Any]:
    s, r = result.synthesis, result.replay
    return {
        "synthesis": {
            "events": s.events,
            "minutes": s.minutes,
            "requests_per_minute": s.requests_per_minute,
            "scenarios": list(s.scenarios),
            "file_bytes": s.file_bytes,
            "seconds": s.seconds,
        },
        "repeats": result.repeats,
        "threads": result.threads,
        "duckdb": result.duckdb_version,
        "memory_method": MEMORY_METHOD,
        "replay": r.measurement.as_json()
        | {
            "imports_s": r.imports_seconds,
            "spec_s": r.spec_seconds,
            "load_s": r.load_seconds,
            "evaluate_s": r.evaluate_seconds,
            "events": r.events,
            "bad_lines": r.bad_lines,
            "exact_reads": r.exact_reads,
            "kept_values": r.kept_values,
            "events_per_s": r.events_per_second,
            "rules": r.rules,
            "fired": list(r.fired),
            "expected_to_fire": list(expected_rules()),
        },
        "scan_read_json_count": result.scan.as_json(),
        "scan_read_json_auto_count": result.scan_auto.as_json(),
        "scan_into_table": result.scan_table.as_json(),
        "scan_columns_counted": result.scan_columns.as_json(),
        "jq": None if result.jq is None else result.jq.as_json() | {"filter": JQ_FILTER},
        "ratio_replay_to_scan": result.scan_ratio,
        "ratio_jq_to_replay": result.jq_speedup,
        "goals": {
            "scan_ratio_max": result.scan_ratio_goal,
            "scan_ratio_met": result.scan_goal_met,
            "jq_speedup_min": JQ_SPEEDUP_GOAL,
            "jq_speedup_met": result.jq_goal_met,
            "memory_max_bytes": MEMORY_GOAL_BYTES,
            "memory_judged_at_events": MEMORY_GOAL_EVENTS,
            "memory_met": result.memory_goal_met,
        },
        "goal_met": result.goal_met,
    }
