"""The Datadog emulator evaluates what was pushed: the log search syntax (documented examples), facets,
each pipeline processor at intake, monitor queries and their group states, and the Logs Aggregate API."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3

from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.datadog.facets import FacetRegistry, parse_facet
from extalerts.emulators.datadog.logs import StoredLog
from extalerts.emulators.datadog.monitors import CompiledMonitor, MonitorStates, evaluate_formula
from extalerts.emulators.datadog.pipelines import compile_pipeline
from extalerts.emulators.datadog.search import SearchError, compile_search
from extalerts.errors import ConfigError
from tests.conftest import REPO

API_KEY, APP_KEY = "k" * 32, "a" * 40
HTTP = urllib3.PoolManager()
T0 = 1_699_999_980_000  # a whole minute, epoch ms

EVENT: dict[str, Any] = {
    "Outcome": "exception",
    "ScriptName": "conversation-api",
    "ScriptTags": ["api", "chatgpt"],
    "EventType": "fetch",
    "WallTimeMs": 40,
    "Event": {"Response": {"Status": 503}, "Request": {"URL": "https://x/a b", "Method": "GET"}},
    "Exceptions": [{"Name": "TypeError", "Message": "boom: timeout"}],
    "Logs": [
        {"Level": "info", "Message": ["starting"]},
        {"Level": "log", "Message": ['{"event":"do_op","op":"store","ok":false,"duration_ms":1200}']},
    ],
}


def stored(attributes: dict[str, Any] | None = None, **reserved: Any) -> StoredLog:
    defaults = {"source": "cloudflare", "service": "conversation-api", "host": "w", "status": "info"}
    return StoredLog(1, T0, T0, json.loads(json.dumps(attributes or EVENT)), ["env:prod"], {**defaults, **reserved})


STATUS_FACET = FacetRegistry([parse_facet("@Event.Response.Status:integer")])
#: The structured-line pipeline extalerts renders for monitors/ and pushes.
RENDERED_PIPELINE = REPO / "rendered/datadog/pipelines/extalerts-structured-logs.json"
#: The service the bundled Logpush destination stamps on every event (the pipeline's filter reads it).
SHIPPED_SERVICE = "workers-trace-events"


# --------------------------------------------------------------------------------------------- search syntax


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Reserved attributes and tags without @, attributes with @ (case sensitive).
        ("source:cloudflare", True),
        ("service:conversation-api", True),
        ("env:prod", True),
        ("env:dev", False),
        ("@Outcome:exception", True),
        ("@Outcome:Exception", False),
        ("Outcome:exception", False),  # no @: a tag, and there is no such tag
        # Wildcards outside quotes only; `?` is one character.
        ("@Outcome:exc*", True),
        ("@Outcome:exc?ption", True),
        ('@Outcome:"exc*"', False),
        ("@Outcome:*", True),
        ("@Missing:*", False),
        # Booleans, implicit AND, parentheses, value groups, NOT and -.
        ("@Outcome:exception AND @EventType:fetch", True),
        ("@Outcome:exception @EventType:alarm", False),
        ("@EventType:alarm OR @Outcome:exception", True),
        ("-@Outcome:ok", True),
        ("NOT @Outcome:exception", False),
        ("@Outcome:(ok OR exception)", True),
        ("(@EventType:alarm OR @EventType:fetch) -@Outcome:ok", True),
        # Arrays: an element matching is enough; objects inside arrays by their key.
        ("@ScriptTags:api", True),
        ("@ScriptTags:chatgpt", True),
        ("@ScriptTags:web", False),
        ("@Exceptions.Name:TypeError", True),
        ("@Logs.Level:log", True),
        ("@Logs.Message:*do_op*", True),
        # Escapes and quotes for special characters.
        ('@Exceptions.Message:"boom: timeout"', True),
        (r"@Exceptions.Message:boom\:\ timeout", True),
        ('@Event.Request.URL:"https://x/a b"', True),
        # Numbers as terms need no facet.
        ("@Event.Response.Status:503", True),
        ("@WallTimeMs:40", True),
        # Free text reads the message only (there is none); *: reads every attribute, case insensitive.
        ("exception", False),
        ("*:EXCEPTION", True),
        ("*:nothing-like-it", False),
    ],
)
def test_search_syntax(query: str, expected: bool) -> None:
    assert compile_search(query, STATUS_FACET)(stored()) is expected


@pytest.mark.parametrize(
    ("query", "with_facet"),
    [
        ("@Event.Response.Status:>=500", True),
        ("@Event.Response.Status:[500 TO 599]", True),
        ("@Event.Response.Status:[500 TO *]", True),
        ("@Event.Response.Status:>503", False),
        ("@Event.Response.Status:<=499", False),
    ],
)
def test_numeric_ranges_need_a_numeric_facet(query: str, with_facet: bool) -> None:
    log = stored()
    assert compile_search(query, STATUS_FACET)(log) is with_facet
    # "In order to search on a numerical attribute, first add it as a facet": without one, nothing matches.
    assert compile_search(query, FacetRegistry())(log) is False
    # A string facet does not make ranges numeric either.
    assert compile_search(query, FacetRegistry([parse_facet("@Event.Response.Status:string")]))(log) is False


@pytest.mark.parametrize("query", ["@a:", "(@a:b", "@a:b)", "@a:[1 TO]", '@a:"open', "@a:>=x"])
def test_malformed_searches_are_refused(query: str) -> None:
    with pytest.raises(SearchError, match="character"):
        compile_search(query)


def test_facet_flags_parse_and_refuse_what_datadog_cannot_have() -> None:
    assert parse_facet("@WallTimeMs:integer:measure").measure
    assert parse_facet("@Event.Response.Status:integer").spec() == "@Event.Response.Status:integer"
    with pytest.raises(ConfigError, match="PATH:TYPE"):
        parse_facet("@x:number")
    with pytest.raises(ConfigError, match="a measure is an integer or a double"):
        parse_facet("@x:string:measure")


# --------------------------------------------------------------------------------------------- processors


def run(processors: list[dict[str, Any]], attributes: dict[str, Any] | None = None, query: str = "") -> StoredLog:
    log = stored(attributes)
    document = {"id": "p", "name": "t", "is_enabled": True, "filter": {"query": query}, "processors": processors}
    compiled = compile_pipeline(document, FacetRegistry())
    assert compiled.unsupported == []
    compiled.run(log)
    return log


def on(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "name": kind, "is_enabled": True, **fields}


def test_date_remapper_reads_epoch_milliseconds_and_iso() -> None:
    assert run([on("date-remapper", sources=["EventTimestampMs"])], {"EventTimestampMs": 1234}).timestamp_ms == 1234
    iso = run([on("date-remapper", sources=["when"])], {"when": "2024-01-01T00:00:00Z"})
    assert iso.timestamp_ms == 1_704_067_200_000
    # No source present: the timestamp stays (the time the log was received).
    assert run([on("date-remapper", sources=["nope"])], {}).timestamp_ms == T0


def test_array_processor_select_length_append() -> None:
    select = on(
        "array-processor",
        operation={
            "type": "select",
            "source": "Logs",
            "filter": "Level:log",
            "value_to_extract": "Message",
            "target": "m",
        },
    )
    log = run([select])
    # The first matching element; its value copied as it is (here an array of strings).
    assert log.attributes["m"] == ['{"event":"do_op","op":"store","ok":false,"duration_ms":1200}']
    length = on("array-processor", operation={"type": "length", "source": "ScriptTags", "target": "n"})
    assert run([length]).attributes["n"] == 2
    append = on("array-processor", operation={"type": "append", "source": "ScriptName", "target": "names"})
    appended = run([append])
    assert appended.attributes["names"] == ["conversation-api"]
    assert "ScriptName" not in appended.attributes  # preserve_source defaults to false
    with pytest.raises(AssertionError):  # only an exact key:value filter is emulated: reported unsupported
        run([on("array-processor", operation={**select["operation"], "filter": "Level:l*"})])


def test_string_builder_joins_arrays_and_skips_what_it_cannot_use() -> None:
    build = on("string-builder-processor", template="%{ScriptTags}|%{Outcome}", target="t", is_replace_missing=False)
    assert run([build]).attributes["t"] == "api,chatgpt|exception"
    objects = on("string-builder-processor", template="%{Exceptions}", target="t", is_replace_missing=False)
    assert "t" not in run([objects]).attributes  # an array of objects: the operation is skipped
    replaced = on("string-builder-processor", template="x%{Exceptions}y", target="t", is_replace_missing=True)
    assert run([replaced]).attributes["t"] == "xy"
    long = on("string-builder-processor", template="%{long}", target="t", is_replace_missing=False)
    assert run([long], {"long": "x" * 256}).attributes["t"] == "x" * 256
    assert "t" not in run([long], {"long": "x" * 257}).attributes  # over 256 characters: skipped


def test_grok_parses_strings_only() -> None:
    grok = {"match_rules": "rule %{data:parsed:json}", "support_rules": ""}
    parsed = run([on("grok-parser", source="line", grok=grok)], {"line": '{"a": 1}'})
    assert parsed.attributes["parsed"] == {"a": 1}
    # An array of strings is not parsed item by item: nothing happens.
    untouched = run([on("grok-parser", source="line", grok=grok)], {"line": ['{"a": 1}']})
    assert "parsed" not in untouched.attributes
    words = {"match_rules": "r %{word:verb} %{integer:code} %{notSpace:path} %{number:took}", "support_rules": ""}
    matched = run([on("grok-parser", source="line", grok=words)], {"line": "GET 503 /a 1.5"})
    assert {k: matched.attributes[k] for k in ("verb", "code", "path", "took")} == {
        "verb": "GET",
        "code": 503,
        "path": "/a",
        "took": 1.5,
    }


def test_unsupported_processors_and_matchers_are_reported_not_run() -> None:
    document = {
        "id": "p",
        "name": "t",
        "is_enabled": True,
        "filter": {"query": ""},
        "processors": [
            on("lookup-processor", source="a", target="b", lookup_table=[]),
            on("grok-parser", source="line", grok={"match_rules": "r %{ipv4:ip}", "support_rules": ""}),
        ],
    }
    compiled = compile_pipeline(document, FacetRegistry())
    assert len(compiled.unsupported) == 2
    assert "does not run lookup-processor" in compiled.unsupported[0]
    assert "grok matcher 'ipv4' is not emulated" in compiled.unsupported[1]


def rendered_pipeline() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(RENDERED_PIPELINE.read_text())
    return document


def test_the_rendered_pipeline_extracts_the_structured_line() -> None:
    processors = rendered_pipeline()["processors"]
    log = run(processors, {**EVENT, "EventTimestampMs": T0 - 5000})
    assert log.timestamp_ms == T0 - 5000
    assert log.attributes["extalerts"] == {"event": "do_op", "op": "store", "ok": False, "duration_ms": 1200}
    # Pointed at the array attribute instead (Logs.Message), grok has nothing to parse.
    (grok,) = [p for p in processors if p["type"] == "grok-parser"]
    grok["source"] = "Logs.Message"
    broken = run(processors)
    assert "extalerts" not in broken.attributes


# --------------------------------------------------------------------------------------------- intake


def send(emulator: DatadogEmulator, *events: dict[str, Any], service: str = SHIPPED_SERVICE) -> None:
    items = [{"message": json.dumps(e), "ddsource": "cloudflare", "service": service} for e in events]
    response = HTTP.request(
        "POST", f"{emulator.url}/api/v2/logs", body=json.dumps(items).encode(), headers={"DD-API-KEY": API_KEY}
    )
    assert response.status == 202


def api(emulator: DatadogEmulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = HTTP.request(
        method,
        f"{emulator.url}{path}",
        body=None if body is None else json.dumps(body).encode(),
        headers={"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY, "Content-Type": "application/json"},
    )
    return response.status, json.loads(response.data or b"null")


def push_rendered_pipeline(emulator: DatadogEmulator) -> None:
    """Create the rendered pipeline through the API, as `push` does; it runs on every later log."""
    status, created = api(emulator, "POST", "/api/v1/logs/config/pipelines", rendered_pipeline())
    assert status == 200, created


def test_pipelines_run_at_intake_in_order_and_later_changes_do_not_reprocess() -> None:
    now = [T0 / 1000]
    with DatadogEmulator(API_KEY, APP_KEY, clock=lambda: now[0]) as emulator:
        first = {
            "name": "a",
            "is_enabled": True,
            "filter": {"query": "source:cloudflare"},
            "processors": [on("attribute-remapper", sources=["Outcome"], target="outcome", preserve_source=True)],
        }
        second = {
            "name": "b",
            "is_enabled": True,
            "filter": {"query": "@outcome:exception"},
            "processors": [
                on(
                    "category-processor",
                    target="kind",
                    categories=[{"filter": {"query": "@outcome:exception"}, "name": "bad"}],
                )
            ],
        }
        status, created = api(emulator, "POST", "/api/v1/logs/config/pipelines", first)
        assert status == 200
        api(emulator, "POST", "/api/v1/logs/config/pipelines", second)
        send(emulator, EVENT)
        (log,) = emulator.store.all()
        # The second pipeline's filter sees what the first one wrote.
        assert (log.attributes["outcome"], log.attributes["kind"]) == ("exception", "bad")
        api(emulator, "DELETE", f"/api/v1/logs/config/pipelines/{created['id']}")
        send(emulator, EVENT)
        old, new = emulator.store.all()
        assert old.attributes["kind"] == "bad"  # processed once, at intake
        assert "outcome" not in new.attributes
        assert "kind" not in new.attributes
        # Logs older than 18 hours (after the date remapper) are dropped at intake.
        push_rendered_pipeline(emulator)
        send(emulator, {**EVENT, "EventTimestampMs": T0 - 19 * 3600 * 1000})
        assert len(emulator.store) == 2


def test_pipeline_order_can_be_read_and_must_list_every_pipeline() -> None:
    with DatadogEmulator(API_KEY, APP_KEY) as emulator:
        ids = [api(emulator, "POST", "/api/v1/logs/config/pipelines", {"name": n})[1]["id"] for n in "ab"]
        assert api(emulator, "GET", "/api/v1/logs/config/pipeline-order") == (200, {"pipeline_ids": ids})
        assert api(emulator, "PUT", "/api/v1/logs/config/pipeline-order", {"pipeline_ids": ids[::-1]})[0] == 200
        assert emulator.state.pipeline_order == ids[::-1]
        assert api(emulator, "PUT", "/api/v1/logs/config/pipeline-order", {"pipeline_ids": ids[:1]})[0] == 422


# --------------------------------------------------------------------------------------------- monitors


def monitor(query: str, critical: float, **options: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "type": "log alert",
        "query": query,
        "message": "{{#is_alert}}@webhook-x{{/is_alert}}",
        "options": {"thresholds": {"critical": critical}, **options},
    }


def evaluation_emulator(*facets: str) -> tuple[DatadogEmulator, list[float]]:
    now = [T0 / 1000]
    emulator = DatadogEmulator(API_KEY, APP_KEY, clock=lambda: now[0], facets=[parse_facet(f) for f in facets])
    return emulator, now


def at(minute: int, **fields: Any) -> dict[str, Any]:
    return {**EVENT, "EventTimestampMs": T0 + minute * 60_000 + 1000, **fields}


def test_a_grouped_count_alerts_and_recovers_per_group() -> None:
    emulator, now = evaluation_emulator()
    with emulator:
        push_rendered_pipeline(emulator)
        query = (
            'logs("source:cloudflare @Outcome:exception").index("*").rollup("count").by("@ScriptName").last("1m") > 1'
        )
        created = emulator.add_monitor(monitor(query, 1))
        send(emulator, at(1), at(1), at(1, ScriptName="auth-worker"))
        now[0] = T0 / 1000 + 150
        changes = emulator.evaluate_monitors()
        assert [(c.group, c.after, c.value, c.at_ms - T0) for _, c in changes] == [
            ("@ScriptName:conversation-api", "Alert", 2.0, 120_000)
        ]
        now[0] = T0 / 1000 + 240
        (recovered,) = [c for _, c in emulator.evaluate_monitors()]
        assert (recovered.after, recovered.value) == ("OK", 0.0)  # an empty count is 0
        state = emulator.monitors()[0]
        assert state["overall_state"] == "OK"
        assert state["id"] == created["id"]


def test_a_monitor_edited_through_the_api_is_evaluated_as_edited() -> None:
    emulator, now = evaluation_emulator()
    with emulator:
        query = 'logs("@Outcome:exception").index("*").rollup("count").last("1m") > 0'
        created = emulator.add_monitor(monitor(query, 0))
        edited = query.replace("@Outcome", "@Outcom")
        status, _ = api(
            emulator,
            "PUT",
            f"/api/v1/monitor/{created['id']}",
            {"query": edited, "options": {"thresholds": {"critical": 0}}},
        )
        assert status == 200
        send(emulator, at(1))
        now[0] = T0 / 1000 + 180
        assert emulator.evaluate_monitors() == []  # the misspelt attribute matches nothing


def test_numeric_aggregations_need_a_measure_and_ranges_a_facet() -> None:
    query = 'logs("@Event.Response.Status:>=500").index("*").rollup("avg", "@WallTimeMs").last("1m") > 10'
    results = {}
    for facets in [
        (),
        ("@Event.Response.Status:integer",),
        ("@Event.Response.Status:integer", "@WallTimeMs:integer:measure"),
    ]:
        emulator, now = evaluation_emulator(*facets)
        with emulator:
            emulator.add_monitor(monitor(query, 10))
            send(emulator, at(1))
            now[0] = T0 / 1000 + 150
            results[len(facets)] = [(c.after, c.value) for _, c in emulator.evaluate_monitors()]
    assert results == {0: [], 1: [], 2: [("Alert", 40.0)]}


def test_formula_with_cutoff_min_and_absence_as_no_data() -> None:
    variables = [
        {
            "name": name,
            "data_source": "logs",
            "indexes": ["*"],
            "compute": {"aggregation": "count"},
            "search": {"query": q},
            "group_by": [{"facet": "@ScriptName", "limit": 10}],
        }
        for name, q in (("matching", "@Outcome:exception"), ("total", "source:cloudflare"))
    ]
    ratio = monitor('formula("matching / cutoff_min(total, 3) * 100").last("1m") > 50', 50, variables=variables)
    absence = monitor(
        'logs("source:cloudflare").index("*").rollup("count").by("@ScriptName").last("1m") < 1',
        1,
        on_missing_data="show_and_notify_no_data",
    )
    emulator, now = evaluation_emulator()
    with emulator:
        push_rendered_pipeline(emulator)  # its date remapper times the logs
        ratio_id = emulator.add_monitor(ratio)["id"]
        absence_id = emulator.add_monitor(absence)["id"]
        send(emulator, at(1), at(1))  # 2 of 2 failing, but under the cutoff of 3: no value
        send(emulator, at(2), at(2), at(2), at(2, Outcome="ok"))  # 3 of 4
        now[0] = T0 / 1000 + 250
        changes = [(m["id"], c.after, c.value, (c.at_ms - T0) // 60_000) for m, c in emulator.evaluate_monitors()]
    assert (ratio_id, "Alert", 75.0, 3) in changes
    assert not any(m == ratio_id and minute == 2 for m, _, _, minute in changes)
    assert (absence_id, "No Data", 0.0, 4) in changes


def test_formula_arithmetic() -> None:
    assert evaluate_formula("a / cutoff_min(b, 50) * 100", {"a": 5, "b": 50}) == 10
    assert evaluate_formula("a / cutoff_min(b, 50) * 100", {"a": 5, "b": 49}) is None
    assert evaluate_formula("a / b", {"a": 1, "b": 0}) is None
    assert evaluate_formula("default_zero(a) + -(2 - 3)", {"a": None}) == 1


def test_pct_change_on_a_log_based_metric_generated_from_its_definition() -> None:
    emulator, now = evaluation_emulator()
    with emulator:
        metric = {
            "data": {
                "id": "x.events",
                "type": "logs_metrics",
                "attributes": {"compute": {"aggregation_type": "count"}, "filter": {"query": "@EventType:fetch"}},
            }
        }
        assert api(emulator, "POST", "/api/v2/logs/config/metrics", metric)[0] == 200
        query = "pct_change(sum(last_5m),last_5m):sum:x.events{*}.as_count() > 200"
        # No date remapper: each log is timed when it arrives. 1 a minute, then 4 a minute from minute 10.
        for minute in range(15):
            now[0] = (T0 + minute * 60_000) / 1000 + 2
            send(emulator, *[at(minute)] * (4 if minute >= 10 else 1))
            if minute == 9:  # evaluated from the next minute on, with 10 minutes of history
                emulator.add_monitor(
                    {"name": "c", "type": "query alert", "query": query, "options": {"thresholds": {"critical": 200}}}
                )
        now[0] = T0 / 1000 + 900
        changes = [(c.after, c.value, (c.at_ms - T0) // 60_000) for _, c in emulator.evaluate_monitors()]
    # At minute 14: the last 5 minutes hold 1 + 4 * 4 = 17, the 5 before them 5: (17 - 5) / 5 * 100.
    assert changes[0] == ("Alert", 240.0, 14)


def test_the_compiled_monitor_refuses_what_it_cannot_evaluate() -> None:
    emulator, _ = evaluation_emulator()
    with emulator:
        emulator.add_monitor(
            {
                "name": "n",
                "type": "event alert",
                "query": "events('x').rollup('count').last('5m') > 1",
                "options": {"thresholds": {"critical": 1}},
            }
        )
        assert emulator.evaluate_monitors() == []
        assert any("is not evaluated" in note for note in emulator.notes)
    with pytest.raises(ValueError, match="not a variable"):
        CompiledMonitor(
            monitor('formula("a / b").last("5m") > 1', 1, variables=[]), emulator.store, FacetRegistry(), dict.get
        )
    assert MonitorStates  # imported for the type


# --------------------------------------------------------------------------------------------- aggregate API


def test_the_official_client_reads_the_logs_aggregate_api() -> None:
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.v2.api.logs_api import LogsApi
    from datadog_api_client.v2.model.logs_aggregate_request import LogsAggregateRequest

    emulator, now = evaluation_emulator("@WallTimeMs:integer:measure")
    with emulator:
        push_rendered_pipeline(emulator)
        send(emulator, at(1), at(1, WallTimeMs=60), at(2, ScriptName="auth-worker"), at(2, Outcome="ok"))
        now[0] = T0 / 1000 + 300
        config = Configuration(host=emulator.url)
        config.api_key["apiKeyAuth"], config.api_key["appKeyAuth"] = API_KEY, APP_KEY
        request = {
            "compute": [
                {"aggregation": "count"},
                {"aggregation": "avg", "metric": "@WallTimeMs"},
                {"aggregation": "count", "type": "timeseries", "interval": "1m"},
            ],
            "filter": {"query": "source:cloudflare @Outcome:exception", "from": "now-15m", "to": "now"},
            "group_by": [{"facet": "@ScriptName"}],
        }
        with ApiClient(config) as client:
            answer = LogsApi(client).aggregate_logs(body=LogsAggregateRequest(**request)).to_dict()
            nothing = (
                LogsApi(client).aggregate_logs(body=LogsAggregateRequest(filter={"query": "@Outcome:nope"})).to_dict()
            )
    assert answer["meta"]["status"] == "done"
    buckets = {b["by"]["@ScriptName"]: b["computes"] for b in answer["data"]["buckets"]}
    assert buckets["conversation-api"]["c0"] == 2
    assert buckets["conversation-api"]["c1"] == 50
    assert buckets["auth-worker"]["c0"] == 1
    assert buckets["conversation-api"]["c2"] == [{"time": "2023-11-14T22:14:00.000Z", "value": 2.0}]
    assert nothing["data"]["buckets"] == []


# --------------------------------------------------------------------------------------------- logs search API


def test_the_official_client_searches_logs_and_pages_with_the_cursor() -> None:
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.v2.api.logs_api import LogsApi
    from datadog_api_client.v2.model.logs_list_request import LogsListRequest

    emulator, now = evaluation_emulator("@Event.Response.Status:integer")
    with emulator:
        # No pipeline: each log is stamped with its intake time, one a second.
        for second in range(7):
            now[0] = T0 / 1000 + 60 + second
            send(emulator, at(1, WallTimeMs=second, Event={"Response": {"Status": 500 + second}}))
        send(emulator, at(1, Outcome="ok"))
        now[0] = T0 / 1000 + 300
        config = Configuration(host=emulator.url)
        config.api_key["apiKeyAuth"], config.api_key["appKeyAuth"] = API_KEY, APP_KEY
        search = {"query": "@Outcome:exception @Event.Response.Status:>=501", "from": "now-15m", "to": "now"}
        with ApiClient(config) as client:
            logs = LogsApi(client)
            first = logs.list_logs(body=LogsListRequest(filter=search, page={"limit": 4})).to_dict()
            rest = logs.list_logs(
                body=LogsListRequest(filter=search, page={"limit": 4, "cursor": first["meta"]["page"]["after"]})
            ).to_dict()
            oldest_first = [
                log.to_dict()["attributes"]["attributes"]["WallTimeMs"]
                for log in logs.list_logs_with_pagination(
                    body=LogsListRequest(filter=search, sort="timestamp", page={"limit": 2})
                )
            ]
            nothing = logs.list_logs(body=LogsListRequest(filter={"query": "@Outcome:nope"})).to_dict()
    # Newest first by default; the numeric range reads the facet; the cursor continues where the page ended.
    assert [log["attributes"]["attributes"]["WallTimeMs"] for log in first["data"]] == [6, 5, 4, 3]
    assert [log["attributes"]["attributes"]["WallTimeMs"] for log in rest["data"]] == [2, 1]
    assert "page" not in rest["meta"]  # the last page has no cursor
    assert oldest_first == [1, 2, 3, 4, 5, 6]
    (newest,) = first["data"][:1]
    assert newest["type"] == "log"
    assert newest["attributes"]["service"] == SHIPPED_SERVICE
    assert str(newest["attributes"]["timestamp"]) == "2023-11-14T22:14:06+00:00"  # parsed by the client
    assert nothing["data"] == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"page": {"limit": 1001}}, "less than or equal to `1000`"),
        ({"page": {"cursor": "not-a-cursor"}}, "page.cursor is not a cursor this API returned"),
        ({"filter": {"query": "@a:(b"}}, "filter.query: missing `)`"),
        ({"sort": "newest"}, "sort: 'newest' is not a value LogsSort allows"),
    ],
)
def test_a_logs_search_the_api_cannot_answer_is_refused_with_its_field(body: dict[str, Any], problem: str) -> None:
    with DatadogEmulator(API_KEY, APP_KEY) as emulator:
        status, answer = api(emulator, "POST", "/api/v2/logs/events/search", body)
    assert status == 400
    assert any(problem in error for error in answer["errors"]), answer
