"""The evaluation engine against hand-computed expectations, one signal kind at a time.

Conventions in these tests: T0 is a minute boundary; an evaluation at T looks at [T - delay - window,
T - delay); `at(m)` is T0 + m minutes.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from extalerts.engine import Engine, EngineError, Semantics, State, write_events
from extalerts.filter.parser import parse
from extalerts.filter.python import to_python
from extalerts.spec import load_spec
from extalerts.spec.loader import Spec
from tests.conftest import MONITORS, write

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def at(minutes: float) -> int:
    return T0 + round(minutes * 60_000)


def event(minute: float, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "EventTimestampMs": at(minute),
        "ScriptName": "api",
        "EventType": "fetch",
        "Outcome": "ok",
        "Entrypoint": "",
        "Event": {"Response": {"Status": 200}},
        "Logs": [],
        "Exceptions": [],
        "WallTimeMs": 10,
        "CPUTimeMs": 1,
    }
    base.update(fields)
    return base


def spec_with(tmp_path: Path, rule: str, fields: str = "") -> Spec:
    text = "version: 1\n" + (f"fields:\n{fields}" if fields else "") + "rules:\n" + rule
    return load_spec([write(tmp_path / "spec.yaml", text)])


def timeline(
    spec: Spec, events: list[dict[str, Any]], semantics: Semantics = "datadog", **kwargs: Any
) -> list[tuple[float, dict[str, str], str, str]]:
    engine = Engine(spec, threads=1, semantics=semantics)
    engine.load_events(events)
    result = engine.evaluate(**kwargs)
    (outcome,) = result.rules.values()
    return [((t.at_ms - T0) / 60_000, dict(t.group), t.before.value, t.after.value) for t in outcome.transitions]


COUNT = """\
  - id: errors
    title: Errors
    severity: high
    filter: 'Outcome != "ok"'
    signal: {kind: count}
    window: 2m
    evaluation_delay: 1m
    thresholds: {critical: 2, critical_recovery: 0, warning: 0}
"""


def test_count_window_edges_delay_and_recovery(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, COUNT)
    events = [event(m) for m in range(20)]  # benign background, one a minute
    events += [event(5.0, Outcome="exception"), event(5.99, Outcome="exception"), event(6.0, Outcome="exception")]
    # At T the window is [T-3, T-1). T=6 ([3,5): 5.0 is the window's end, excluded) sees nothing;
    # T=7 ([4,6): 5.0 and 5.99 = 2, not > 2: warning); T=8 ([5,7): 3: alert); T=9 ([6,8): 1, above the
    # recovery threshold 0: still alert); T=10 ([7,9): 0: ok).
    assert timeline(spec, events, start_ms=at(3), end_ms=at(12)) == [
        (7.0, {}, "ok", "warn"),
        (8.0, {}, "warn", "alert"),
        (10.0, {}, "alert", "ok"),
    ]


def test_splunk_semantics_are_stateless_and_run_once_per_window(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, COUNT)
    events = [event(m, Outcome="exception") for m in (5.0, 5.99, 6.0, 7.5)]
    engine = Engine(spec, semantics="splunk", threads=1)
    engine.load_events(events)
    (outcome,) = engine.evaluate(start_ms=at(3), end_ms=at(12)).rules.values()
    # The rendered alert runs every 2 minutes (its window), on even minutes: T=4, 6, 8, 10, 12.
    assert outcome.evaluations == 5
    # T=8 ([5,7): 3) alerts; without recovery thresholds T=10 ([7,9): 1) is a warning at once, where
    # Datadog would stay in alert until the count is back to the recovery threshold 0.
    assert [((t.at_ms - T0) // 60_000, t.after.value) for t in outcome.transitions] == [
        (8, "alert"),
        (10, "warn"),
        (12, "ok"),
    ]


def test_count_groups_and_a_group_that_goes_quiet_counts_zero(tmp_path: Path) -> None:
    rule = COUNT.replace("    window: 2m\n", "    window: 2m\n    group_by: [ScriptName]\n")
    spec = spec_with(tmp_path, rule)
    events = [event(2 + k / 10, Outcome="exception", ScriptName="a") for k in range(5)]
    events += [event(2.5, Outcome="exception", ScriptName="b")]
    # The window [T-3, T-1) holds minute 2 for T=4 and T=5; at T=6 both groups count 0.
    assert timeline(spec, events, start_ms=at(3), end_ms=at(8)) == [
        (4.0, {"ScriptName": "a"}, "ok", "alert"),
        (4.0, {"ScriptName": "b"}, "ok", "warn"),
        (6.0, {"ScriptName": "a"}, "alert", "ok"),
        (6.0, {"ScriptName": "b"}, "warn", "ok"),
    ]


RATIO = """\
  - id: rate
    title: 5xx rate
    severity: high
    filter: 'EventType == "fetch"'
    signal: {kind: ratio, match: "Event.Response.Status >= 500", min_events: 10}
    window: 1m
    evaluation_delay: 0s
    thresholds: {critical: 20, warning: 10}
"""


def test_ratio_with_min_events(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, RATIO)
    bad = {"Event": {"Response": {"Status": 503}}}
    events = [event(0 + k / 20, **(bad if k < 3 else {})) for k in range(20)]  # minute 0: 3/20 = 15 %
    events += [event(1 + k / 20, **(bad if k < 5 else {})) for k in range(20)]  # minute 1: 25 %
    events += [event(2 + k / 10, **bad) for k in range(5)]  # minute 2: 5 events, all bad: below min_events
    events += [event(3 + k / 20) for k in range(20)]  # minute 3: 0 %
    # No data (minute 2) keeps the state: the alert from minute 1 holds until minute 3 clears it.
    assert timeline(spec, events, start_ms=at(1), end_ms=at(4)) == [
        (1.0, {}, "ok", "warn"),
        (2.0, {}, "warn", "alert"),
        (4.0, {}, "alert", "ok"),
    ]


MEASURE = """\
  - id: latency
    title: p90 latency
    severity: high
    signal: {kind: measure, field: WallTimeMs, aggregation: p90}
    window: 2m
    evaluation_delay: 0s
    thresholds: {critical: 500, critical_recovery: 300}
"""


def test_percentile_over_sliding_windows(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, MEASURE)
    events = [event(0 + k / 10, WallTimeMs=100) for k in range(10)]
    events += [event(1 + k / 10, WallTimeMs=1000 if k < 3 else 100) for k in range(10)]
    events += [event(2 + k / 10, WallTimeMs=400) for k in range(10)]
    events += [event(3 + k / 10, WallTimeMs=100) for k in range(10)]
    # quantile_cont p90 over 20 values: index 0.9 * 19 = 17.1.
    # T=2: [0,2): 17 x 100, 3 x 1000 -> sorted[17] = 1000, sorted[18] = 1000 -> 1000: alert
    # T=3: [1,3): 7 x 100, 10 x 400, 3 x 1000 -> sorted[17]=1000 -> alert
    # T=4: [2,4): 10 x 100, 10 x 400 -> 400: above the 300 recovery -> still alert
    # T=5: [3,5): 10 x 100 -> 100 -> ok
    assert timeline(spec, events, start_ms=at(2), end_ms=at(5)) == [(2.0, {}, "ok", "alert"), (5.0, {}, "alert", "ok")]


def test_measure_average_and_no_data(tmp_path: Path) -> None:
    rule = MEASURE.replace("aggregation: p90", "aggregation: avg").replace("window: 2m", "window: 1m")
    spec = spec_with(tmp_path, rule)
    events = [event(0.5, WallTimeMs=900), event(0.6, WallTimeMs=300), event(3.5, WallTimeMs=100)]
    # T=1: avg 600 -> alert; T=2, T=3: no events -> no data keeps the alert; T=4: 100 -> ok.
    assert timeline(spec, events, start_ms=at(1), end_ms=at(4)) == [(1.0, {}, "ok", "alert"), (4.0, {}, "alert", "ok")]


CARDINALITY = """\
  - id: distinct
    title: Distinct conversations
    severity: low
    signal: {kind: cardinality, field: conversation}
    window: 1m
    evaluation_delay: 0s
    thresholds: {critical: 3}
"""


def test_cardinality_of_a_derived_field(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, CARDINALITY, fields="  conversation: {key: conversation_id, type: string}\n")

    def logged(minute: float, conversation: str) -> dict[str, Any]:
        line = json.dumps({"event": "do_op", "conversation_id": conversation})
        logs = [{"Level": "info", "Message": ["first a plain message"]}, {"Level": "log", "Message": [line]}]
        return event(minute, Logs=logs)

    events = [logged(0.1 * k, f"c{k % 2}") for k in range(10)]  # minute 0: 2 distinct
    events += [logged(1 + 0.1 * k, f"c{k}") for k in range(5)]  # minute 1: 5 distinct
    events += [event(2.5)]  # minute 2: no structured line at all
    assert timeline(spec, events, start_ms=at(1), end_ms=at(3)) == [(2.0, {}, "ok", "alert"), (3.0, {}, "alert", "ok")]


def test_distinct_counts_are_aggregated_in_the_one_grouping_of_the_scan(tmp_path: Path) -> None:
    """No DISTINCT aggregate: DuckDB would run it as a second grouping of every event read."""
    spec = spec_with(tmp_path, CARDINALITY, fields="  conversation: {key: conversation_id, type: string}\n")
    engine = Engine(spec)
    sql = engine._aggregation(engine.fields_query("events.ndjson"))
    assert "list_distinct(list(" in sql
    assert "DISTINCT " not in sql


def test_distinct_counts_keep_each_value_once_per_minute(tmp_path: Path) -> None:
    """What a distinct count keeps grows with the values seen each minute, not with the events: 600
    events over 4 conversations in 2 minutes keep 8 values (a percentile, each value with its count)."""
    spec = spec_with(tmp_path, CARDINALITY, fields="  conversation: {key: conversation_id, type: string}\n")
    line = lambda k: json.dumps({"conversation_id": f"c{k % 4}"})  # noqa: E731
    events = [event(k / 300, Logs=[{"Level": "log", "Message": [line(k)], "TimestampMs": 0}]) for k in range(600)]
    engine = Engine(spec, threads=1)
    engine.load_events(events)
    assert engine.kept_values() == 8
    (outcome,) = engine.evaluate(start_ms=at(1), end_ms=at(2)).rules.values()
    assert [(t.at_ms, t.after.value) for t in outcome.transitions][:1] == [(at(1), "alert")]


CHANGE = """\
  - id: spike
    title: Spike
    severity: medium
    signal: {kind: change, compare_to: 5m}
    window: 1m
    evaluation_delay: 0s
    thresholds: {critical: 100, warning: 50}
"""


def test_change_against_an_earlier_window(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, CHANGE)
    events = [event(m + k / 10) for m in range(12) for k in range(10)]  # 10 a minute
    events += [event(7 + k / 20) for k in range(10)]  # minute 7: 20 (+100 %)
    events += [event(8 + k / 20) for k in range(25)]  # minute 8: 35 (+250 %)
    # Baselines reaching before the data are unknown, so nothing is judged before T=6.
    assert timeline(spec, events) == [(8.0, {}, "ok", "warn"), (9.0, {}, "warn", "alert"), (10.0, {}, "alert", "ok")]


ABSENCE = """\
  - id: silent
    title: Silent
    severity: high
    signal: {kind: absence, expected: [never-seen], lookback: 1h}
    window: 3m
    evaluation_delay: 1m
    group_by: [ScriptName]
"""


def test_absence_per_group_including_an_expected_group(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, ABSENCE)
    events = [event(m + 0.5, ScriptName="a") for m in range(10)]
    events += [event(m + 0.5, ScriptName="b") for m in range(4)]  # b stops after minute 3
    # b's last event is at 3.5; the window [T-4, T-1) is empty once T-4 > 3.5, i.e. from T=8.
    assert timeline(spec, events, start_ms=at(4), end_ms=at(11)) == [
        (8.0, {"ScriptName": "b"}, "ok", "alert"),
    ]
    # Only Splunk's alert knows the expected group that never sent anything. Its cron runs once per
    # window (every 3 minutes, at 6 and 9 here): b, silent since 3.5, is 4.5 minutes quiet at T=9.
    assert timeline(spec, events, "splunk", start_ms=at(4), end_ms=at(11)) == [
        (6.0, {"ScriptName": "never-seen"}, "ok", "alert"),
        (9.0, {"ScriptName": "b"}, "ok", "alert"),
    ]


UNGROUPED_ABSENCE = """\
  - id: heartbeat
    title: Heartbeat
    severity: high
    filter: 'ScriptName == "cron"'
    signal: {kind: absence}
    window: 5m
    evaluation_delay: 1m
"""

UNGROUPED_LOW_COUNT = """\
  - id: too-quiet
    title: Too quiet
    severity: high
    filter: 'ScriptName == "cron"'
    signal: {kind: count}
    window: 5m
    evaluation_delay: 1m
    thresholds: {operator: "<", critical: 3}
"""


@pytest.mark.parametrize("semantics", ["datadog", "splunk"])
@pytest.mark.parametrize("rule", [UNGROUPED_ABSENCE, UNGROUPED_LOW_COUNT])
def test_an_ungrouped_rule_is_evaluated_from_the_first_full_window_of_the_data(
    tmp_path: Path, rule: str, semantics: Semantics
) -> None:
    spec = spec_with(tmp_path, rule)
    events = [event(m) for m in range(60)]  # other traffic, from minute 0
    events += [event(m + k / 5, ScriptName="cron") for m in range(30, 60) for k in range(5)]  # the rule's, from 30
    # The data starts at minute 0: the first full window [0, 5) is judged at T=6 and holds none of
    # the rule's events, so the rule fires there, not once its own events begin; they end it at 31+.
    # Splunk's alert runs once per window, on the five: first at T=10, and T=35 sees the events.
    expected = {"datadog": [(6.0, {}, "ok", "alert"), (32.0, {}, "alert", "ok")]}
    expected["splunk"] = [(10.0, {}, "ok", "alert"), (35.0, {}, "alert", "ok")]
    assert timeline(spec, events, semantics) == expected[semantics]


def test_a_group_is_still_judged_only_once_seen(tmp_path: Path) -> None:
    """Unlike an ungrouped rule, a Datadog group cannot be known before its first event."""
    grouped = UNGROUPED_LOW_COUNT.replace("    evaluation_delay", "    group_by: [ScriptName]\n    evaluation_delay")
    spec = spec_with(tmp_path, grouped)
    events = [event(m + 0.5) for m in range(60)]
    events += [event(m + k / 5, ScriptName="cron") for m in range(30, 60) for k in range(5)]
    assert timeline(spec, events) == []


# --------------------------------------------------------------------------------------------- input


def test_bad_lines_are_counted_and_located(tmp_path: Path) -> None:
    spec = load_spec([MONITORS])
    lines = [json.dumps(event(m)) for m in range(5)]
    lines.insert(2, "")  # a blank line does not count as a record, but does as a line
    lines.insert(4, '{"EventTimestampMs": 1, "broken"')
    lines.append('{"no": "timestamp"}')
    path = tmp_path / "logs.ndjson.gz"
    with gzip.open(path, "wt") as out:
        out.write("\n".join(lines) + "\n")
    engine = Engine(spec, rules=["worker-exception"])
    engine.load([str(path)])
    assert engine.events == 5
    assert engine.bad_line_count == 2
    assert [b.line for b in engine.bad_lines] == [5, 8]
    assert str(engine.bad_lines[0]).startswith(f"{path}:5: ")
    with pytest.raises(EngineError, match=r"logs\.ndjson\.gz:5: .*--strict"):
        Engine(spec, rules=["worker-exception"]).load([str(path)], strict=True)


def test_lines_the_scan_refuses_for_their_encoding_are_located_too(tmp_path: Path) -> None:
    spec = load_spec([MONITORS])
    line = json.dumps(event(1))
    lines = [
        "\ufeff" + line,  # a byte-order mark starting the file is read
        line,
        "\ufeff" + line,  # one inside the file (files joined together) is not
        line[:-1] + ', "Entrypoint": "\\ud800"}',  # nor an escaped lone surrogate, which is no text
        line[:-1] + ', "Entrypoint": "\\ud83d\\ude00"}',  # a surrogate pair is
    ]
    path = write(tmp_path / "joined.ndjson", "\n".join(lines) + "\n")
    engine = Engine(spec, rules=["worker-exception"])
    engine.load([str(path)])
    assert (engine.events, engine.bad_line_count) == (3, 2)
    assert [b.line for b in engine.bad_lines] == [3, 4]


def test_lines_skipped_are_never_an_empty_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the line-by-line reading miss what the scan skipped, the listing says so instead of nothing."""
    import extalerts.engine.scan

    spec = load_spec([MONITORS])
    path = write(tmp_path / "logs.ndjson", "\n".join([json.dumps(event(1)), "not json", "[]"]) + "\n")
    monkeypatch.setattr(extalerts.engine.scan, "_bad_line_numbers", lambda file, wanted: [2])
    engine = Engine(spec, rules=["worker-exception"])
    engine.load([str(path)])
    assert engine.bad_line_count == 2
    assert [str(b) for b in engine.bad_lines] == [
        f"{path}:2: not a Workers Trace Event (bad JSON or no EventTimestampMs)",
        f"{path}: 1 more line not read as a Workers Trace Event, which reading it line by line does not "
        "find (check that the file is UTF-8 NDJSON, one event a line)",
    ]


def test_globs_directories_and_missing_files(tmp_path: Path) -> None:
    spec = load_spec([MONITORS])
    for day in (1, 2):
        write(tmp_path / f"d{day}.ndjson", json.dumps(event(day)) + "\n")
    engine = Engine(spec, rules=["worker-exception"])
    engine.load([str(tmp_path / "d*.ndjson")])
    assert engine.events == 2
    engine = Engine(spec, rules=["worker-exception"])
    engine.load([str(tmp_path)])
    assert engine.events == 2
    with pytest.raises(EngineError, match="no such file"):
        Engine(spec).load([str(tmp_path / "missing.ndjson")])


def test_load_and_load_files_take_the_same_options_and_refuse_unknown_ones(tmp_path: Path) -> None:
    spec = load_spec([MONITORS])
    path = write(tmp_path / "logs.ndjson", json.dumps(event(1)) + "\nnot json\n")
    read: list[str] = []
    Engine(spec, rules=["worker-exception"]).load([str(tmp_path)], on_file=read.append)
    Engine(spec, rules=["worker-exception"]).load_files([str(path)], on_file=read.append)
    assert read == [str(path), str(path)]
    for strict_load in (Engine(spec).load, Engine(spec).load_files):
        with pytest.raises(EngineError, match=r"logs\.ndjson:2: .*--strict"):
            strict_load([str(path)], strict=True)
        with pytest.raises(TypeError, match="'worker'"):
            strict_load([str(path)], worker=2)  # type: ignore[call-arg]


def test_a_directory_reads_log_files_and_refuses_one_with_nothing_to_read(tmp_path: Path) -> None:
    spec = load_spec([MONITORS])
    logs = tmp_path / "logs"
    write(logs / "20260101T000000Z_20260101T000030Z_ab12.log", json.dumps(event(1)) + "\n")
    write(logs / "_SUCCESS", "")
    engine = Engine(spec, rules=["worker-exception"])
    engine.load([str(logs)])
    assert engine.events == 1
    markers = tmp_path / "markers"
    write(markers / "_SUCCESS", "")
    with pytest.raises(
        EngineError, match=r"markers: no \.ndjson, \.json, \.log, \.gz file to read \(it holds _SUCCESS\)"
    ):
        Engine(spec).load([str(markers)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="it is empty"):
        Engine(spec).load([str(tmp_path / "empty")])


# --------------------------------------------------------------------------------------------- filters


def _random_event(rng: random.Random, minute: int) -> dict[str, Any]:
    line = {"event": rng.choice(["do_op", "cleanup", "tool_mapping"]), "op": rng.choice(["store", "delete"])}
    if rng.random() < 0.7:
        line["ok"] = rng.random() < 0.5
    if rng.random() < 0.7:
        line["attempts"] = rng.choice([1, 3, "3"])
    plain = {
        "Level": rng.choice(["log", "warn"]),
        "Message": [rng.choice(["hello", "ERROR_CODE_INVALID_URL x", '{"not": "closed'])],
    }
    # The structured line is read from the first `log` entry only, whatever comes before or after it.
    logs = [plain]
    if rng.random() < 0.6:
        logged = {"Level": "log", "Message": [json.dumps(line)]}
        logs = [logged, plain] if rng.random() < 0.5 else [plain, logged]
    ev = event(
        minute,
        Outcome=rng.choice(["ok", "ok", "exception", "exceededCpu"]),
        EventType=rng.choice(["fetch", "alarm", "worker_rpc"]),
        Entrypoint=rng.choice(["", "ConversationStateDO"]),
        Event={"Response": {"Status": rng.choice([200, 404, 500, 503])}} if rng.random() < 0.8 else {},
        Logs=logs if rng.random() < 0.8 else [],
    )
    if rng.random() < 0.1:
        del ev["Outcome"]
    return ev


@pytest.mark.parametrize("exact", [False, True], ids=["typed", "exact"])
def test_duckdb_filters_agree_with_the_python_reference(tmp_path: Path, exact: bool) -> None:
    """Every filter in monitors/ selects exactly the same events in DuckDB as the reference predicate,
    through the typed reading and through the exact one."""
    from extalerts.filter.duckdb import to_duckdb

    spec = load_spec([MONITORS])
    rng = random.Random(7)
    events = [_random_event(rng, m) for m in range(400)]
    source = tmp_path / "events.ndjson"
    write_events(events, source)
    engine = Engine(spec)
    fields = engine.fields_query(str(source), exact=exact)
    assert engine.db.execute(f"SELECT count(*) FROM ({fields}) WHERE _variant").fetchone() == (0,)  # noqa: S608
    for rule in spec.rules:
        for expr in (rule.filter, rule.ratio_match):
            if expr is None:
                continue
            sql = to_duckdb(expr, engine.field, engine.columns)
            rows = engine.db.execute(f"SELECT ts FROM ({fields}) WHERE {sql} ORDER BY ts").fetchall()  # noqa: S608
            predicate = to_python(expr, spec.catalog)
            expected = sorted(e["EventTimestampMs"] for e in events if predicate(e))
            assert [r[0] for r in rows] == expected, rule.id
            assert 0 < len(expected) < len(events) or rule.id == "conversation-surge", rule.id


#: Logs shapes around the structured line's definition (README, "Structured log line").
_LINE = '{"event":"do_op","ok":false}'
STRUCTURED_LINE_SHAPES: list[list[Any]] = [
    [{"Level": "log", "Message": [_LINE]}],  # read
    [{"Level": "info", "Message": ["x"]}, {"Level": "log", "Message": [_LINE]}],  # read: first `log` entry
    [{"Level": "log", "Message": ["x"]}, {"Level": "log", "Message": [_LINE]}],  # not read: only the first
    [{"Level": "log", "Message": ["hello", _LINE]}],  # joined with ",": not a JSON object
    [{"Level": "log", "Message": ['{"event":"do_op"', '"ok":false}']}],  # joined: a JSON object
    [{"Level": "log", "Message": [{"event": "do_op", "ok": False}]}],  # an object, not a string
    [{"Level": "log", "Message": [_LINE, 5]}],  # not only strings
    [{"Level": "log", "Message": [_LINE, None]}],  # not only strings
    [{"Level": "log", "Message": _LINE}],  # one string rather than an array
    [{"level": "log", "message": [_LINE]}],  # keys as written
    [{"Level": "Log", "Message": [_LINE]}],  # the level as written
    [{"Message": [_LINE]}],  # no level
    [{"Level": "log", "Message": [" " + _LINE]}],  # JSON allows leading blanks
    [{"Level": "log", "Message": ['{"ok":false,"pad":"' + "x" * 235 + '"}']}],  # 256 characters: read
    [{"Level": "log", "Message": ['{"ok":false,"pad":"' + "x" * 236 + '"}']}],  # 257: not read
    [{"Level": "log", "Message": ['{"ok":false,"pad":"' + "é" * 235 + '"}']}],  # 256 characters, more bytes
    [{"Level": "log", "Message": ['{"ok":false,"pad":"\\u00e9\\n\\\\ é"}']}],  # escapes in the text and its JSON
    [{"Level": "log", "Message": ['{"ok":false', '"x":"a\\"b"}']}],  # joined: one part escaped, one not
    [{"Level": "log", "Message": []}],  # an empty array: an empty text, no object
    [{"Level": "log", "Message": ["5"]}, {"Level": "log", "Message": [_LINE]}],  # text "5", not the number
    [{"Level": "warn", "Message": [5, None, {"a": 1}]}, {"Level": "log", "Message": [_LINE]}],  # others' shapes
]


def _reads_as_the_reference(
    engine: Engine, fields: str, text: str, events: list[dict[str, Any]]
) -> Callable[[dict[str, Any]], bool]:
    """Check that the filter ``text`` over ``fields`` holds for each event as the reference says, but
    for the events the typed reading leaves (flagged ``_variant``) to the exact one; the reference."""
    from extalerts.filter.duckdb import to_duckdb

    expr = parse(text)
    sql = to_duckdb(expr, engine.field, engine.columns)
    query = f"SELECT ts, {sql} AS hit, _variant FROM ({fields})"  # noqa: S608
    read = {ts: (hit, variant) for ts, hit, variant in engine.db.execute(query).fetchall()}
    predicate = to_python(expr, engine.spec.catalog)
    for e in events:
        hit, variant = read[e["EventTimestampMs"]]
        assert variant or hit == predicate(e), (text, e["Logs"])
    return predicate


@pytest.mark.parametrize("exact", [False, True], ids=["typed", "exact"])
def test_the_structured_line_is_read_as_the_reference_reads_it(tmp_path: Path, exact: bool) -> None:

    spec = load_spec([MONITORS])
    events = [event(k, Logs=logs) for k, logs in enumerate(STRUCTURED_LINE_SHAPES)]
    source = tmp_path / "events.ndjson"
    write_events(events, source)
    engine = Engine(spec, rules=["do-operation-errors"])
    fields = engine.fields_query(str(source), exact=exact)
    predicate = _reads_as_the_reference(engine, fields, "op_ok == false", events)
    assert [minute for minute, e in enumerate(events) if predicate(e)] == [0, 1, 4, 8, 12, 13, 15, 16, 17, 20]


#: A value of each JSON type for each kind of derived field, and text that reads like another type.
DERIVED_VALUES: list[Any] = [
    12,
    12.5,
    -3,
    1e3,
    "12",
    " 7",
    "abc",
    "",
    True,
    False,
    None,
    {"a": 1},
    [1, 2],
    "true",
    "ok",
]


@pytest.mark.parametrize("exact", [False, True], ids=["typed", "exact"])
def test_derived_values_of_every_json_type_read_as_the_reference_reads_them(tmp_path: Path, exact: bool) -> None:
    """A number, a boolean and a text field of the structured line, given values of every JSON type
    (numeric text among them): each reading agrees with the reference on every event it holds.
    (``exists`` is left out: both readings hold a value of another type as missing, where the
    reference finds it present; see the test below.)"""

    spec = load_spec([MONITORS])
    keys = {"duration_ms": "op_duration_ms", "ok": "op_ok", "op": "do_operation"}
    events = [
        event(k, Logs=[{"Level": "log", "Message": [json.dumps({key: value})]}])
        for k, (key, value) in enumerate((key, value) for key in keys for value in DERIVED_VALUES)
    ]
    source = tmp_path / "events.ndjson"
    write_events(events, source)
    engine = Engine(spec, rules=["do-operation-errors", "do-latency-p99"])
    fields = engine.fields_query(str(source), exact=exact)
    checks = [
        "op_duration_ms >= 12",
        "op_duration_ms < 0",
        "op_ok == true",
        "op_ok == false",
        'do_operation == "12"',
        'do_operation == "ok"',
    ]
    for text in checks:
        predicate = _reads_as_the_reference(engine, fields, text, events)
        assert any(predicate(e) for e in events), text


@pytest.mark.parametrize("exact", [False, True], ids=["typed", "exact"])
def test_exists_holds_for_a_value_of_the_fields_own_type(tmp_path: Path, exact: bool) -> None:
    """exists() on a number or a boolean field: true for a value of that type (numeric text for a
    number), false when missing, null or empty; it compiled to a comparison with '' that DuckDB
    could not run on a number. A value of another type reads as missing."""
    from extalerts.filter.duckdb import to_duckdb

    spec = load_spec([MONITORS])
    # (value, exists) pairs: a dict would merge True with 1 and 0 with False.
    values = [(12, True), ("12", True), (0, True), (None, False), ("", False), ("abc", False), (True, False)]
    flags = [(True, True), (False, True), (None, False), ("true", False), (1, False)]
    events = [
        event(k, Logs=[{"Level": "log", "Message": [json.dumps({"duration_ms": v})]}])
        for k, (v, _) in enumerate(values)
    ]
    events += [
        event(100 + k, Logs=[{"Level": "log", "Message": [json.dumps({"ok": v})]}]) for k, (v, _) in enumerate(flags)
    ]
    events.append(event(200, Logs=[{"Level": "log", "Message": ["plain text"]}]))
    source = tmp_path / "events.ndjson"
    write_events(events, source)
    engine = Engine(spec, rules=["do-operation-errors", "do-latency-p99"])
    fields = engine.fields_query(str(source), exact=exact)
    for text, expected in (("exists(op_duration_ms)", values), ("exists(op_ok)", flags)):
        sql = to_duckdb(parse(text), engine.field, engine.columns)
        rows = engine.db.execute(f"SELECT ts FROM ({fields}) WHERE {sql} ORDER BY ts").fetchall()  # noqa: S608
        offset = 0 if text.startswith("exists(op_duration") else 100
        wanted = [event(offset + k)["EventTimestampMs"] for k, (_, present) in enumerate(expected) if present]
        assert [r[0] for r in rows] == wanted, text


def test_the_typed_reading_parses_each_structured_line_once() -> None:
    """The messages are parsed by the read itself; the structured line once more, into every derived
    field at once (json_transform fails exactly where json_valid does, so no separate check)."""
    engine = Engine(load_spec([MONITORS]), rules=["do-operation-errors", "invalid-url-flood"])
    sql = engine.fields_query("events.ndjson")
    assert "json_structure" not in sql
    assert "json_valid" not in sql
    assert sql.count("json_transform(") == 1


def _variant_shapes(event_at: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    """Events in shapes the typed columns cannot hold: lowercase keys, a message that is one string."""
    line = json.dumps({"event": "do_op", "op": "store", "ok": False, "duration_ms": 1500})
    return [
        event_at(0, Logs=[{"level": "log", "message": ["ERROR_CODE_INVALID_URL /x"]}]),
        event_at(1, Logs=[{"Level": "log", "Message": "ERROR_CODE_INVALID_URL /y"}]),
        event_at(2, Entrypoint="ConversationStateDO", Logs=[{"Level": "log", "Message": line}]),
        event_at(3, Logs=[{"Level": "log", "Message": ["fine"]}]),
    ]


def test_input_the_typed_columns_cannot_hold_is_read_the_exact_way() -> None:
    spec = load_spec([MONITORS])
    events = _variant_shapes(event)
    engine = Engine(spec, rules=["invalid-url-flood", "do-operation-errors", "do-latency-p99"])
    engine.load_events(events)
    assert engine.exact_reads == 1
    for rule in engine.rules:
        predicate = to_python(rule.filter, spec.catalog)
        rows = engine._rows(rule)
        matched = sum(int(row[0]) for by_bucket in rows.values() for row in by_bucket.values())
        assert matched == sum(1 for e in events if predicate(e)) > 0, rule.id
    # The same events in the shape Logpush writes take the typed reading alone.
    plain = Engine(spec, rules=["invalid-url-flood"])
    plain.load_events([event(0, Logs=[{"Level": "log", "Message": ["ERROR_CODE_INVALID_URL /x"]}])])
    assert plain.exact_reads == 0


def test_state_values_are_the_documented_names() -> None:
    assert [s.value for s in State] == ["ok", "warn", "alert"]


def test_the_engine_never_draws_a_progress_bar(tmp_path: Path) -> None:
    # DuckDB draws its bar on stdout, which is where `extalerts replay --output json` writes; it only
    # tracks progress, for `load(on_progress=...)`.
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"])
    (printed,) = engine.db.execute("SELECT current_setting('enable_progress_bar_print')").fetchone() or (None,)
    assert printed is False


@pytest.mark.parametrize("batch_files", [256, 1])
def test_load_reports_the_share_of_bytes_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_files: int
) -> None:
    import extalerts.engine.scan

    monkeypatch.setattr(extalerts.engine.scan, "BATCH_FILES", batch_files)
    small, large = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    write_events([event(m / 10) for m in range(100)], small)
    write_events([event(10 + m / 10) for m in range(300)], large)
    heard: list[float] = []
    read: list[str] = []
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"])
    engine.load([str(small), str(large)], on_progress=heard.append, on_file=read.append)
    assert engine.events == 400
    assert read == [str(small), str(large)]
    assert heard == sorted(heard)
    assert heard[-1] == 1.0
    assert all(0 < share <= 1 for share in heard)
    first_file = small.stat().st_size / (small.stat().st_size + large.stat().st_size)
    # Read one at a time, the first file's end is heard by its bytes; read together, only the end.
    assert (pytest.approx(first_file) in heard) is (batch_files == 1)


WINDOWED = """\
  - id: latency
    title: Latency
    severity: high
    filter: 'EventType == "fetch"'
    signal: {kind: measure, field: WallTimeMs, aggregation: p95}
    window: 4m
    evaluation_delay: 90s
    group_by: [ScriptName]
    thresholds: {critical: 900}
  - id: visitors
    title: Visitors
    severity: low
    filter: 'EventType == "fetch"'
    signal: {kind: cardinality, field: Event.Request.URL}
    window: 3m
    evaluation_delay: 90s
    group_by: [ScriptName]
    thresholds: {critical: 1000}
"""


def _quantile_cont(values: list[float], fraction: float) -> float:
    """Linear interpolation between the two nearest ranks, written out."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    return low + (high - low) * (position - math.floor(position))


def _nearest_rank(values: list[float], fraction: float) -> float:
    """limits.conf's nearest-rank: the value of 0-based rank floor(fraction * count), written out."""
    ordered = sorted(values)
    return ordered[min(math.floor(round(fraction * 100) * len(ordered) / 100), len(ordered) - 1)]


@pytest.mark.parametrize("semantics", ["datadog", "splunk"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_windowed_signals_match_a_direct_computation(tmp_path: Path, seed: int, semantics: Semantics) -> None:
    """Percentiles and distinct counts per window, against sorting and counting each window's events
    directly: random values, gaps, events without the value or the group, two input files sharing
    buckets."""
    spec = spec_with(tmp_path, WINDOWED)
    percentile = _quantile_cont if semantics == "datadog" else _nearest_rank
    rng = random.Random(seed)
    events = []
    for _ in range(600):
        minute = rng.choice([rng.uniform(0, 12), rng.uniform(20, 30)])  # a gap in the middle
        fields: dict[str, Any] = {"ScriptName": rng.choice(["api", "auth"]), "WallTimeMs": rng.randint(1, 2000)}
        fields["EventType"] = rng.choice(["fetch", "fetch", "alarm"])
        if rng.random() < 0.9:
            fields["Event"] = {"Request": {"URL": f"/u/{rng.randint(0, 40)}"}}
        if rng.random() < 0.1:
            del fields["WallTimeMs"]
        events.append(event(minute, **fields))
        if rng.random() < 0.05:
            del events[-1]["ScriptName"]
    half = len(events) // 2
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    write_events(events[:half], first)
    write_events(events[half:], second)
    engine = Engine(spec, semantics=semantics)
    engine.load([str(first), str(second)])
    result = engine.evaluate()
    delay, checked = 90_000, 0
    for rule_id, window, value_of in (
        ("latency", 4, lambda e: e.get("WallTimeMs")),
        ("visitors", 3, lambda e: e.get("Event", {}).get("Request", {}).get("URL")),
    ):
        groups = {dict(group)["ScriptName"] for group in result.rules[rule_id].series}
        # Events without ScriptName: a group of their own for Datadog, in no group for Splunk.
        assert ("N/A" in groups) is (semantics == "datadog")
        for group, series in result.rules[rule_id].series.items():
            script = dict(group)["ScriptName"]
            for at_ms, value in series:
                inside = [
                    e
                    for e in events
                    if e.get("ScriptName", "N/A") == script
                    and e["EventType"] == "fetch"
                    and at_ms - delay - window * 60_000 <= e["EventTimestampMs"] < at_ms - delay
                ]
                present = [value_of(e) for e in inside if value_of(e) is not None]
                if rule_id == "visitors":
                    expected: float | None = float(len(set(present)))
                else:
                    expected = percentile([float(v) for v in present], 0.95) if present else None
                if expected is None:
                    assert value is None, (rule_id, script, at_ms)
                else:
                    assert value == pytest.approx(expected, rel=1e-12), (rule_id, script, at_ms)
                checked += 1
    assert checked > (100 if semantics == "datadog" else 25)  # Splunk runs once per window


EVERY_FIELD = "".join(
    f"""\
  - id: r{index}
    title: Rule {index}
    severity: low
    filter: '{text}'
    signal: {{kind: count}}
    window: 1m
    thresholds: {{critical: 1000}}
"""
    for index, text in enumerate(
        [
            'Exceptions.Name == "TypeError"',
            'Exceptions.Message contains "undefined"',
            'Logs.Level in ["error", "warn"]',
            'ScriptTags == "prod"',
            'Event.Request.URL contains "/v1/"',
            'Event.Request.Method == "POST" and Event.Response.Status >= 500',
            'ScriptVersion.Tag == "v2"',
            "not exists(Event.RayID)",
            'DispatchNamespace == "tenants" or WallTimeMs > 100',
            'Logs.Message contains "timeout"',
        ]
    )
)


def _shaped_event(rng: random.Random, minute: int, lowercase: bool) -> dict[str, Any]:
    def keyed(name: str) -> str:
        return name.lower() if lowercase and rng.random() < 0.5 else name

    exceptions = [
        {keyed("Name"): rng.choice(["TypeError", "Error"]), keyed("Message"): rng.choice(["x is undefined", "boom"])}
        for _ in range(rng.randint(0, 2))
    ]
    logs = [
        {keyed("Level"): rng.choice(["log", "error", "warn"]), keyed("Message"): [rng.choice(["ok", "db timeout"])]}
        for _ in range(rng.randint(0, 2))
    ]
    request = {"URL": rng.choice(["/v1/a", "/v2/b", 7]), "Method": rng.choice(["GET", "POST"])}
    fields: dict[str, Any] = {
        "Exceptions": exceptions,
        "Logs": logs,
        "ScriptTags": rng.choice([["prod"], ["dev", "prod"], [], ["dev"]]),
        "Event": {"Request": request, "Response": {"Status": rng.choice([200, 503, "503"])}},
        "ScriptVersion": {"ID": "1", "Tag": rng.choice(["v1", "v2"]), "Message": ""},
        "DispatchNamespace": rng.choice(["", "tenants"]),
        "WallTimeMs": rng.choice([5, 500]),
    }
    if rng.random() < 0.5:
        fields["Event"]["RayID"] = "abc"
    return event(minute, **fields)


@pytest.mark.parametrize("lowercase", [False, True], ids=["logpush-shape", "lowercase-keys"])
def test_every_field_reads_alike_typed_and_exact(tmp_path: Path, lowercase: bool) -> None:
    """Each kind of field, through both readings, against the reference: in the shape Logpush writes
    the typed reading flags exactly the events holding a value of another type than its field's (a
    number for a URL, text for a status), which the exact reading reads, and agrees with the reference
    on every other event; with lowercase keys it flags those events too. The exact one always agrees."""
    from extalerts.filter.duckdb import to_duckdb

    spec = spec_with(tmp_path, EVERY_FIELD)
    rng = random.Random(11)
    events = [_shaped_event(rng, m, lowercase) for m in range(300)]
    source = tmp_path / "events.ndjson"
    write_events(events, source)
    engine = Engine(spec)
    assert engine.typed_columns() is not None
    readings = {"typed": engine.fields_query(str(source)), "exact": engine.fields_query(str(source), exact=True)}
    flagged = {
        row[0]
        for row in engine.db.execute(f"SELECT ts FROM ({readings['typed']}) WHERE _variant").fetchall()  # noqa: S608
    }
    other_type = {
        e["EventTimestampMs"]
        for e in events
        if isinstance(e["Event"]["Request"]["URL"], int) or isinstance(e["Event"]["Response"]["Status"], str)
    }
    assert other_type
    if lowercase:
        assert flagged > other_type
    else:
        assert flagged == other_type
    for name, fields in readings.items():
        if lowercase and name == "typed":
            continue
        read = events if name == "exact" else [e for e in events if e["EventTimestampMs"] not in flagged]
        for rule in spec.rules:
            assert rule.filter is not None
            sql = to_duckdb(rule.filter, engine.field, engine.columns)
            kept = "true" if name == "exact" else "NOT _variant"
            query = f"SELECT ts FROM ({fields}) WHERE {kept} AND {sql} ORDER BY ts"  # noqa: S608
            rows = engine.db.execute(query).fetchall()
            predicate = to_python(rule.filter, spec.catalog)
            expected = sorted(e["EventTimestampMs"] for e in read if predicate(e))
            assert [r[0] for r in rows] == expected, (name, rule.id)
            assert 0 < len(expected) < len(read), rule.id


def _outcome(engine: Engine) -> tuple[Any, ...]:
    result = engine.evaluate()
    rules = {rule_id: (rule.transitions, rule.series) for rule_id, rule in result.rules.items()}
    return rules, result.events, [str(b) for b in result.bad_lines], result.bad_line_count


def test_a_batch_of_files_reads_as_each_file_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One query over several files: bad lines are placed in their own file, a file in shapes the typed
    columns cannot hold is read again the exact way alone, and the outcome is that of file by file."""
    import extalerts.engine.scan

    spec = load_spec([MONITORS])
    rng = random.Random(5)
    plain = tmp_path / "a.ndjson.gz"
    with gzip.open(plain, "wt") as out:
        out.write("\n".join(json.dumps(_random_event(rng, m)) for m in range(60)) + "\n")
    lowercase = tmp_path / "b.ndjson"
    flood = [event(30 + k / 20, Logs=[{"level": "log", "message": ["ERROR_CODE_INVALID_URL /x"]}]) for k in range(200)]
    write_events(flood, lowercase)
    broken = tmp_path / "c.ndjson"
    broken.write_text(json.dumps(event(61)) + "\n{broken\n" + json.dumps(event(62)) + "\n")
    files = [str(plain), str(lowercase), str(broken)]

    together = Engine(spec)
    together.load(files)
    assert together.exact_reads == 1
    assert [str(b) for b in together.bad_lines] == [
        f"{broken}:2: not a Workers Trace Event (bad JSON or no EventTimestampMs)"
    ]
    assert together.evaluate().rules["invalid-url-flood"].intervals()

    monkeypatch.setattr(extalerts.engine.scan, "BATCH_FILES", 1)
    alone = Engine(spec)
    alone.load(files)
    assert _outcome(together) == _outcome(alone)


def test_an_unreadable_file_in_a_batch_is_named_and_skipped(tmp_path: Path) -> None:
    good = tmp_path / "a.ndjson"
    write_events([event(0)], good)
    corrupt = tmp_path / "b.ndjson.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"])
    engine.load([str(good), str(corrupt)])
    assert engine.events == 1
    (warning,) = engine.warnings
    assert warning.startswith(f"{corrupt}: the gzip data is damaged at byte ")
    assert warning.endswith("before any whole line; skipped (fetch the file again)")
    with pytest.raises(EngineError, match=r"b\.ndjson\.gz: the gzip data is damaged at byte \d+ .*--strict stops"):
        Engine(load_spec([MONITORS]), rules=["worker-exception"]).load([str(good), str(corrupt)], strict=True)


NOTIFIED = """\
  - id: errors
    title: Errors
    severity: high
    filter: 'Outcome != "ok"'
    signal: {kind: count}
    window: 1m
    evaluation_delay: 0s
    thresholds: {critical: 0}
    renotify: 3m
    throttle: 5m
"""


@pytest.mark.parametrize(
    ("semantics", "expected"),
    [
        # Datadog: on alerting at 1m and 8m, and every 3m while still alerting (4m; 7m is after the end).
        ("datadog", [1, 4, 8]),
        # Splunk: a trigger each minute from 1m to 6m and at 8m; the 5m throttle holds back 2m-5m and 8m.
        ("splunk", [1, 6]),
    ],
)
def test_notifications_follow_renotify_and_the_throttle(
    tmp_path: Path, semantics: Semantics, expected: list[int]
) -> None:
    spec = spec_with(tmp_path, NOTIFIED)
    events = [event(m + 0.5, Outcome="exception") for m in range(6)]  # minutes 0-5 fail
    events += [event(6.5), event(7.5, Outcome="exception"), event(8.5)]  # 6 is fine, 7 fails again
    engine = Engine(spec, threads=1, semantics=semantics)
    engine.load_events(events)
    (outcome,) = engine.evaluate(start_ms=at(1), end_ms=at(9)).rules.values()
    assert [(t - T0) // 60_000 for t, _ in outcome.notifications] == expected


WARNED = """\
  - id: errors
    title: Errors
    severity: high
    filter: 'Outcome != "ok"'
    signal: {kind: count}
    window: 1m
    evaluation_delay: 0s
    group_by: [ScriptName]
    thresholds: {critical: 3, warning: 1}
    throttle: 5m
"""


def test_splunk_counts_the_warning_search_notifications_apart(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, WARNED)
    failing = {"Outcome": "exception"}
    # api: 2 errors a minute (warning) in minutes 0-2 and 6, 5 (critical) in minutes 3-5; web: critical in minute 0.
    counts = {0: 2, 1: 2, 2: 2, 3: 5, 4: 5, 5: 5, 6: 2}
    events = [event(m + i / 10, **failing) for m, n in counts.items() for i in range(n)]
    events += [event(0.5 + i / 10, ScriptName="web", **failing) for i in range(5)] + [event(7.5)]
    minutes: dict[str, dict[str, list[tuple[int, str]]]] = {}
    for semantics in ("splunk", "datadog"):
        engine = Engine(spec, threads=1, semantics=semantics)
        engine.load_events(events)
        (outcome,) = engine.evaluate(start_ms=at(1), end_ms=at(8)).rules.values()
        minutes[semantics] = {
            level: [((t - T0) // 60_000, dict(g)["ScriptName"]) for t, g in sent]
            for level, sent in (("alert", outcome.notifications), ("warning", outcome.warning_notifications))
        }
    # One notification per group and run: web alerts at 1m while api warns. The warning search has its own
    # throttle: api's warning at 7m is 6m after the one at 1m; the critical run at 4m notifies at once.
    assert minutes["splunk"] == {"alert": [(1, "web"), (4, "api")], "warning": [(1, "api"), (7, "api")]}
    assert minutes["datadog"] == {"alert": [(1, "web"), (4, "api")], "warning": []}


PERCENTILES = """\
  - id: p90
    title: p90 latency
    severity: high
    signal: {kind: measure, field: WallTimeMs, aggregation: p90}
    window: 1m
    evaluation_delay: 0s
    thresholds: {critical: 5000}
  - id: median
    title: median latency
    severity: high
    signal: {kind: measure, field: WallTimeMs, aggregation: median}
    window: 1m
    evaluation_delay: 0s
    thresholds: {critical: 5000}
"""


@pytest.mark.parametrize(
    ("semantics", "expected"),
    [
        # Interpolated between the nearest ranks (0-based position (n - 1) * p):
        # minute 0, 100..1000: p90 at 8.1 -> 900 + 0.1 * 100 = 910; median at 4.5 -> 550;
        # minute 1, 100..400: p90 at 2.7 -> 300 + 0.7 * 100 = 370; median at 1.5 -> 250.
        ("datadog", {"p90": [910.0, 370.0], "median": [550.0, 250.0]}),
        # limits.conf nearest-rank: the value of 0-based rank floor(p * n):
        # minute 0: p90 rank 9 -> 1000, median rank 5 -> 600; minute 1: p90 rank 3 -> 400, median rank 2 -> 300.
        ("splunk", {"p90": [1000.0, 400.0], "median": [600.0, 300.0]}),
    ],
)
def test_percentiles_interpolate_for_datadog_and_take_the_nearest_rank_for_splunk(
    tmp_path: Path, semantics: Semantics, expected: dict[str, list[float]]
) -> None:
    spec = spec_with(tmp_path, PERCENTILES)
    events = [event(k / 10, WallTimeMs=100 * (k + 1)) for k in range(10)]
    events += [event(1 + k / 10, WallTimeMs=100 * (4 - k)) for k in range(4)]  # unsorted on purpose
    engine = Engine(spec, threads=1, semantics=semantics)
    engine.load_events(events)
    result = engine.evaluate(start_ms=at(1), end_ms=at(2))
    assert {rule_id: [v for _, v in outcome.series[()]] for rule_id, outcome in result.rules.items()} == expected


GROUPED_BY_A_MISSING_FIELD = """\
  - id: errors
    title: Errors
    severity: high
    filter: 'Outcome != "ok"'
    signal: {kind: count}
    window: 1m
    evaluation_delay: 0s
    group_by: [ScriptName]
    thresholds: {critical: 2}
  - id: slow
    title: Slow
    severity: high
    signal: {kind: measure, field: WallTimeMs, aggregation: p99}
    window: 1m
    evaluation_delay: 0s
    group_by: [ScriptName]
    thresholds: {critical: 500}
"""


@pytest.mark.parametrize(
    ("semantics", "expected"),
    [
        # Datadog semantics (unchanged): the events without ScriptName make a group of their own.
        ("datadog", {"errors": [(1, "N/A"), (1, "api")], "slow": [(1, "N/A")]}),
        # Splunk's `stats … BY ScriptName` returns a row per value: events without one are in no group.
        ("splunk", {"errors": [(1, "api")], "slow": []}),
    ],
)
def test_events_without_the_group_by_field_form_a_group_only_under_datadog(
    tmp_path: Path, semantics: Semantics, expected: dict[str, list[tuple[int, str]]]
) -> None:
    spec = spec_with(tmp_path, GROUPED_BY_A_MISSING_FIELD)
    # Minute 0: api fails 3 times (fast); 3 failing, slow events carry no ScriptName (one a JSON null).
    events = [event(k / 10, Outcome="exception") for k in range(3)]
    nameless = [event(0.5 + k / 10, Outcome="exception", WallTimeMs=900) for k in range(3)]
    for index, nameless_event in enumerate(nameless):
        if index:
            del nameless_event["ScriptName"]
        else:
            nameless_event["ScriptName"] = None
    engine = Engine(spec, threads=1, semantics=semantics)
    engine.load_events(events + nameless + [event(1.5)])
    result = engine.evaluate(start_ms=at(1), end_ms=at(2))
    fired = {
        rule_id: sorted(
            ((t.at_ms - T0) // 60_000, dict(t.group)["ScriptName"])
            for t in outcome.transitions
            if t.after is State.ALERT
        )
        for rule_id, outcome in result.rules.items()
    }
    assert fired == expected
    if semantics == "splunk":
        assert all(("ScriptName", "N/A") not in outcome.series for outcome in result.rules.values())
