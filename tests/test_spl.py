"""The Splunk emulator's SPL: each case states the documented behaviour it checks (page names are the
SPL Search Reference's and Search Manual's)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extalerts.emulators.spl import (
    EventIndex,
    IndexedEvent,
    SearchContext,
    SplSyntaxError,
    SplUnsupported,
    TimestampRule,
    compile_search,
    nearest_rank,
    relative_time,
    result_text,
    spath_values,
    term_matches,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def index_of(*events: dict[str, Any], index: str = "cloudflare", sourcetype: str = "cloudflare:workers") -> EventIndex:
    found = EventIndex()
    for at, event in enumerate(events):
        found.add(IndexedEvent(json.dumps(event), T0 + at, index, sourcetype))
    return found


def run(
    spl: str, index: EventIndex, earliest: float | None = None, latest: float | None = None
) -> list[dict[str, str]]:
    context = SearchContext(index, earliest, latest, now=T0 + 3600)
    return [result_text(row) for row in compile_search(spl).run(context)]


EVENTS = (
    {"ScriptName": "api", "Outcome": "ok", "Event": {"Response": {"Status": 200}}, "CPUTimeMs": 5},
    {"ScriptName": "api", "Outcome": "exception", "Event": {"Response": {"Status": 500}}, "CPUTimeMs": 50},
    {"ScriptName": "auth", "Outcome": "ok", "Event": {"Response": {"Status": 404}}, "CPUTimeMs": 9},
    {
        "Outcome": "ok",
        "CPUTimeMs": 1,
        "Logs": [{"Message": ['{"event":"do_op","op":"store","ok":false}', "plain ERROR_CODE_INVALID_URL: /x"]}],
    },
)

# (documented behaviour, SPL after the base search, expected rows)
CASES: list[tuple[str, str, list[dict[str, str]]]] = [
    (
        "stats: without BY, one row even for no events",
        '| where Outcome="nope" | stats count AS value sum(CPUTimeMs) AS cpu',
        [{"value": "0"}],
    ),
    (
        "stats: BY drops events whose BY field is null (the 4th event has no ScriptName)",
        "| stats count AS value BY ScriptName",
        [{"ScriptName": "api", "value": "2"}, {"ScriptName": "auth", "value": "1"}],
    ),
    (
        "stats: avg, max, dc, values; count(eval(...)) counts events where it is true",
        "| stats avg(CPUTimeMs) AS avg max(CPUTimeMs) AS max dc(Outcome) AS dc values(Outcome) AS outcomes "
        'count(eval(Outcome="ok")) AS ok',
        [{"avg": "16.25", "max": "50", "dc": "2", "outcomes": "exception\nok", "ok": "3"}],
    ),
    (
        "limits.conf perc_method nearest-rank: R = floor(p/100*count), 0-based",
        "| stats perc50(CPUTimeMs) AS p50 p99(CPUTimeMs) AS p99 median(CPUTimeMs) AS median",
        [{"p50": "9", "p99": "50", "median": "9"}],
    ),
    (
        "where: numbers compare as numbers when both sides are numeric (field values are text)",
        "| spath output=status path=Event.Response.Status | where status>=500 | stats count AS value",
        [{"value": "1"}],
    ),
    (
        "where: number against a non-numeric string compares as strings; null compares to nothing",
        '| where Outcome>"f" | stats count AS value',
        [{"value": "3"}],
    ),
    (
        "where: string comparisons are case-sensitive (the <eval-expression> is case-sensitive)",
        '| where Outcome="OK" | stats count AS value',
        [{"value": "0"}],
    ),
    (
        "where: a comparison with a null field is not true, and NOT of it is not true either",
        '| where NOT ScriptName="api" | stats count AS value',
        [{"value": "1"}],
    ),
    (
        "where: isnotnull makes the null case explicit (what the renderer emits for negations)",
        '| where NOT (isnotnull(ScriptName) AND ScriptName="api") | stats count AS value',
        [{"value": "2"}],
    ),
    (
        "spath: {} takes every array element (multivalue); mvfilter/match/mvindex read the JSON line",
        '| spath output=m path=Logs{}.Message{} | eval line=mvindex(mvfilter(match(m, "^[{]")), 0) '
        "| spath input=line output=ev path=event | spath input=line output=ok path=ok "
        '| where ev="do_op" AND ok="false" | stats count AS value',
        [{"value": "1"}],
    ),
    (
        "mvfind: index of the first value matching the regex, null when none",
        '| spath output=m path=Logs{}.Message{} | where isnotnull(mvfind(m, "ERROR_CODE")) '
        '| eval at=mvfind(m, "ERROR_CODE"), n=mvcount(m), joined=mvjoin(m, "|") | table at n',
        [{"at": "1", "n": "2"}],
    ),
    (
        "eval: if/case/coalesce/round (half away from zero); null() removes the field",
        '| head 1 | eval a=if(CPUTimeMs>1, "big", "small"), b=case(CPUTimeMs>100, "x", CPUTimeMs>1, "y"), '
        "c=coalesce(nothing, ScriptName), d=round(2.5), e=round(10/3, 2), f=null() | table a b c d e f",
        [{"a": "small", "b": None, "c": None, "d": "3", "e": "3.33"}],  # type: ignore[dict-item]
    ),
    (
        "eval: division by zero is null; . concatenates as strings; in() matches any listed value",
        '| where in(ScriptName, "auth", "x") | eval z=1/0, s=ScriptName . "-" . CPUTimeMs | table z s',
        [{"s": "auth-9"}],
    ),
    (
        "fillnull: value= (default 0) for the listed fields; then BY keeps those events",
        "| fillnull value=none ScriptName | stats count AS value BY ScriptName",
        [
            {"ScriptName": "api", "value": "2"},
            {"ScriptName": "auth", "value": "1"},
            {"ScriptName": "none", "value": "1"},
        ],
    ),
    (
        "rename, sort (numbers as numbers, - descending), head",
        "| rename CPUTimeMs AS cpu | sort - cpu | head 2 | table cpu",
        [{"cpu": "50"}, {"cpu": "9"}],
    ),
    (
        "search after a pipe: the search language over the results' fields (case-insensitive values)",
        "| search ScriptName=API OR Outcome=exception | stats count AS value",
        [{"value": "2"}],
    ),
    (
        "append [subsearch] with makeresults/mvexpand; stats BY over both",
        '| stats count AS n BY ScriptName | append [| makeresults | eval ScriptName=mvappend("api", "new") '
        "| mvexpand ScriptName | eval n=0 | fields ScriptName n] | stats sum(n) AS n BY ScriptName",
        [{"ScriptName": "api", "n": "2"}, {"ScriptName": "auth", "n": "1"}, {"ScriptName": "new", "n": "0"}],
    ),
]


@pytest.mark.parametrize(("behaviour", "pipeline", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_spl_semantics(behaviour: str, pipeline: str, expected: list[dict[str, str | None]]) -> None:
    rows = run('index=cloudflare sourcetype="cloudflare:workers" ' + pipeline, index_of(*EVENTS))
    assert rows == [{k: v for k, v in row.items() if v is not None} for row in expected], behaviour


def test_base_search_terms_and_fields_follow_the_search_language() -> None:
    index = index_of(*EVENTS)
    base = 'index=cloudflare sourcetype="cloudflare:workers" '
    # "By default, searches are case-insensitive"; a term matches whole segments of _raw.
    assert len(run(base + "error_code_invalid_url", index)) == 1
    assert len(run(base + "ERROR_CODE", index)) == 1  # minor breakers (_) split segments
    assert len(run(base + "ERROR_COD", index)) == 0
    assert len(run(base + '"exception"', index)) == 1
    # field=value: case-insensitive value, wildcards, OR binds tighter than the implied AND.
    assert len(run(base + "ScriptName=AP*", index)) == 2
    assert len(run(base + "ScriptName=api Outcome=ok OR Outcome=exception", index)) == 2
    # != needs the field; NOT does not (Search Manual, "Difference between NOT and !=").
    assert len(run(base + "ScriptName!=api", index)) == 1
    assert len(run(base + "NOT ScriptName=api", index)) == 2
    assert len(run(base + "Event.Response.Status>=404", index)) == 2
    # Another index or source type holds nothing of these.
    assert run('index=main sourcetype="cloudflare:workers"', index) == []
    assert run('index=cloudflare sourcetype="cloudflare:json"', index) == []


def test_the_time_range_is_earliest_inclusive_latest_exclusive() -> None:
    index = index_of(*EVENTS)  # at T0, T0+1, T0+2, T0+3
    assert len(run("index=cloudflare", index, earliest=T0 + 1, latest=T0 + 3)) == 2
    # Time modifiers in the search set its range (now is T0+3600): -1h is T0 itself, -59m after T0+3.
    assert len(run("index=cloudflare earliest=-1h latest=now", index)) == 4
    assert len(run("index=cloudflare earliest=-59m latest=now", index)) == 0
    assert len(run("index=cloudflare | addinfo | where info_max_time > _time", index, T0, T0 + 10)) == 4


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("now", T0 + 754),
        ("-10m@m", T0 + 120),  # -10m from 00:12:34 is 00:02:34, snapped to 00:02:00
        ("-5m@m", T0 + 420),
        ("@m", T0 + 720),
        ("-1h@h", T0 - 3600),
        ("@d", T0),
        ("-1d@d+6h", T0 - 86400 + 6 * 3600),
    ],
)
def test_time_modifiers_offset_then_snap(spec: str, expected: float) -> None:
    now = T0 + 754  # 00:12:34
    assert relative_time(now, spec) == expected


def test_nearest_rank_percentiles() -> None:
    # limits.conf.spec perc_method: rank R = floor((percentile/100)*count), 0-based.
    numbers = list(range(1, 101))
    assert nearest_rank(numbers, 99) == 100
    assert nearest_rank(numbers, 95) == 96
    assert nearest_rank([5], 99) == 5
    assert nearest_rank([], 50) is None


def test_spath_paths() -> None:
    document = {"a": [{"b": [1, 2]}, {"b": [3]}], "c": {"d": True}, "e": None}
    assert spath_values(document, "a{}.b{}") == ["1", "2", "3"]
    assert spath_values(document, "a{2}.b{1}") == "3"  # spath indexes from 1
    assert spath_values(document, "c.d") == "true"
    assert spath_values(document, "missing") is None


def test_raw_terms_match_segments() -> None:
    assert term_matches("error", 'x "error": y')
    assert term_matches("error", "error_code")
    assert not term_matches("error", "errors")
    assert term_matches("err*", "errors")


def test_what_it_cannot_run_is_refused_by_name() -> None:
    with pytest.raises(SplUnsupported, match="emulator cannot run command eventstats"):
        compile_search("index=x | eventstats count")
    with pytest.raises(SplUnsupported, match=r"emulator cannot run the eval function cidrmatch\(\)"):
        compile_search('index=x | where cidrmatch("10.0.0.0/8", ip)')
    with pytest.raises(SplUnsupported, match=r"the stats function estdc\(\)"):
        compile_search("index=x | stats estdc(a)")
    with pytest.raises(SplSyntaxError):
        compile_search('index=x | where a="b')
    # eval cannot store a boolean (eval usage: "booleans cannot be assigned").
    with pytest.raises(Exception, match="boolean"):
        run("index=cloudflare | eval x=1>0", index_of(*EVENTS))


def test_timestamps_follow_props() -> None:
    # props.conf.spec: TIME_FORMAT starts reading after TIME_PREFIX; no prefix: no extraction.
    rule = TimestampRule('"EventTimestampMs":\\s*', "%s%3N", 20)
    assert rule.extract('{"EventTimestampMs": 1767225600123, "x": 1}') == pytest.approx(1767225600.123)
    assert rule.extract('{"x": 1}') is None
    iso = TimestampRule('"ts":"', "%Y-%m-%dT%H:%M:%SZ")
    assert iso.extract('{"ts":"2026-01-01T00:00:00Z"}') == T0


def test_spath_reads_the_json_value_that_starts_its_input() -> None:
    # The structured line (Message strings joined with ",") may have plain messages after the object.
    index = index_of({"Logs": [{"Level": "log", "Message": ['{"drill":"d1"}', "plain text"]}]})
    spl = (
        'index=cloudflare | spath output=m path=Logs{}.Message{} | eval line=mvjoin(m, ",") '
        "| spath input=line output=drill path=drill | table drill"
    )
    assert run(spl, index) == [{"drill": "d1"}]
