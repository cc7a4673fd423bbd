"""`extalerts doctor --provider datadog` against the Datadog emulator set up as README "Datadog setup"
says (the pipeline pushed, the facets of the rendered facets.json created, Logpush traffic through the
logs intake): each broken piece is found and named with the rules it breaks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import urllib3

from extalerts.doctor import Finding
from extalerts.doctor_datadog import datadog_doctor
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.datadog.facets import Facet, facets_from_document
from extalerts.intake import DatadogIntake
from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
from extalerts.render import render
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import cli_run, push_all

API_KEY = "doctor-api-key-51c2"
APP_KEY = "doctor-app-key-8e07"
#: What the Logpush destination of monitors/logpush.yaml stamps on every event.
SHIPPED = {"ddsource": "cloudflare", "service": "workers-trace-events"}


def _events(now_ms: int) -> list[dict[str, Any]]:
    """Traffic touching every field a bundled rule reads, as Logpush ships it."""
    at = now_ms - 90_000
    fetch = {
        "EventTimestampMs": at,
        "EventType": "fetch",
        "Outcome": "ok",
        "ScriptName": "conversation-api",
        "CPUTimeMs": 3,
        "Event": {"Response": {"Status": 200}},
        "Logs": [{"Level": "log", "Message": ["GET /v1/conversations"], "TimestampMs": at}],
    }
    line = {
        "event": "do_op",
        "op": "store",
        "ok": True,
        "duration_ms": 12.5,
        "attempts": 1,
        "storage_bytes": 2048,
        "conversation_id": "c-1",
    }
    durable = {
        "EventTimestampMs": at + 1,
        "EventType": "worker_rpc",
        "Entrypoint": "ConversationStateDO",
        "Outcome": "ok",
        "ScriptName": "conversation-api",
        "CPUTimeMs": 1,
        "Event": {},
        "Logs": [{"Level": "log", "Message": [json.dumps(line)], "TimestampMs": at + 1}],
    }
    return [fetch, {**fetch, "Event": {"Response": {"Status": 503}}}, durable, durable]


@contextmanager
def org(spec_dir: Path, *, break_it: Any = None) -> Iterator[tuple[DatadogEmulator, DatadogApi]]:
    """A set-up org (pushed, facets created as README "Datadog setup" says, a minute of traffic)
    after ``break_it(emulator)`` ran between the push and the traffic."""
    shift = [-30.0]  # the traffic arrives 30 s ago; the doctor reads now
    with DatadogEmulator(API_KEY, APP_KEY, clock=lambda: time.time() + shift[0]) as emulator:
        api = DatadogApi(DatadogSettings(emulator.url, API_KEY, APP_KEY), RetryPolicy(max_attempts=1), seed=0)
        push_all(DatadogProvider(api), spec_dir)
        (facets,) = [f for f in render(load_spec([spec_dir]), ["datadog"]) if f.path == "datadog/facets.json"]
        for facet in facets_from_document(json.loads(facets.content)):
            emulator.add_facet(facet)
        if break_it is not None:
            break_it(emulator)
        # Events of 90 s ago, received 30 s ago: Logpush shipped them 60 s late.
        DatadogIntake(emulator.url, API_KEY, SHIPPED).send(_events(int(time.time() * 1000)))
        shift[0] = 0.0
        yield emulator, api


def config_api(emulator: DatadogEmulator, method: str, path: str, body: Any = None) -> Any:
    """A call to the emulator's configuration API, as an edit in the Datadog UI would make it."""
    response = urllib3.request(
        method,
        f"{emulator.url}{path}",
        body=None if body is None else json.dumps(body).encode(),
        headers={"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY, "Content-Type": "application/json"},
    )
    assert response.status == 200, response.data
    return json.loads(response.data or b"null")


def problems(spec_dir: Path, break_it: Any = None) -> list[Finding]:
    with org(spec_dir, break_it=break_it) as (_, api):
        return [f for f in datadog_doctor(load_spec([spec_dir]), api) if not f.ok]


def edit_pipeline(change: Callable[[dict[str, Any]], None]) -> Callable[[DatadogEmulator], None]:
    """Edit the pushed pipeline through the API (read, change, write back)."""

    def edit(emulator: DatadogEmulator) -> None:
        (pipeline,) = config_api(emulator, "GET", "/api/v1/logs/config/pipelines")
        change(pipeline)
        body = {k: pipeline[k] for k in ("name", "is_enabled", "filter", "processors")}
        config_api(emulator, "PUT", f"/api/v1/logs/config/pipelines/{pipeline['id']}", body)

    return edit


def test_a_set_up_org_has_no_problem(spec_dir: Path) -> None:
    with org(spec_dir) as (_, api):
        findings = datadog_doctor(load_spec([spec_dir]), api)
    assert [f for f in findings if not f.ok] == []
    subjects = " ".join(f.subject for f in findings)
    assert "Datadog pipeline" in subjects
    assert "Datadog facet @Event.Response.Status (integer)" in subjects
    assert "Datadog facet @extalerts.duration_ms (double, measure)" in subjects
    assert any("stamped with their event time" in f.message for f in findings)


def _delete_pipeline(emulator: DatadogEmulator) -> None:
    (pipeline,) = config_api(emulator, "GET", "/api/v1/logs/config/pipelines")
    config_api(emulator, "DELETE", f"/api/v1/logs/config/pipelines/{pipeline['id']}")


def test_pipeline_missing_names_the_rules_reading_derived_fields(spec_dir: Path) -> None:
    found = problems(spec_dir, _delete_pipeline)
    messages = [f"{f.subject} {f.message}" for f in found]
    pipeline = next(m for m in messages if m.startswith("Datadog pipeline"))
    assert "does not exist" in pipeline
    assert "do-operation-errors" in pipeline
    assert "do-latency-p99" in pipeline
    assert "worker-exception" not in pipeline  # reads no derived field
    # Without the pipeline's date remapper, events carry their intake time.
    assert any("stamped with their intake time" in m and "worker-exception" in m for m in messages)


def test_facet_missing_names_the_rules_with_a_range_on_it(spec_dir: Path) -> None:
    found = problems(spec_dir, lambda emulator: emulator.remove_facet("@Event.Response.Status"))
    (facet,) = found
    assert facet.subject == "Datadog facet @Event.Response.Status (integer)"
    assert "the facet is missing or not integer" in facet.message
    assert "breaks http-4xx-rate, http-5xx-rate, worker-exception" in facet.message
    assert "Create facet" in facet.fix


def test_wrong_facet_type_is_found(spec_dir: Path) -> None:
    def as_string(emulator: DatadogEmulator) -> None:
        emulator.add_facet(Facet("@Event.Response.Status", "string"))

    (facet,) = problems(spec_dir, as_string)
    assert "not integer" in facet.message
    assert "worker-exception" in facet.message


def test_a_dimension_where_a_measure_belongs_is_found(spec_dir: Path) -> None:
    def dimension(emulator: DatadogEmulator) -> None:
        emulator.add_facet(Facet("@extalerts.duration_ms", "double", measure=False))

    (facet,) = problems(spec_dir, dimension)
    assert facet.subject == "Datadog facet @extalerts.duration_ms (double, measure)"
    assert "not a measure; breaks do-latency-p99" in facet.message


def test_no_event_time_when_the_pipeline_is_disabled(spec_dir: Path) -> None:
    def disable(pipeline: dict[str, Any]) -> None:
        pipeline["is_enabled"] = False

    found = problems(spec_dir, edit_pipeline(disable))
    messages = [f"{f.subject}: {f.message}" for f in found]
    assert any("is disabled" in m and "do-operation-errors" in m for m in messages)
    timing = next(m for m in messages if "intake time" in m)
    assert "4 of the 4 newest" in timing
    assert "60 s after EventTimestampMs" in timing
    assert "logs-stopped" in timing


def test_no_event_time_when_the_pipeline_is_out_of_the_order(spec_dir: Path) -> None:
    def out_of_order(emulator: DatadogEmulator) -> None:
        # No API takes a pipeline out of the order (PUT must list them all): the org's state is set as if.
        with emulator._lock:
            emulator.state.pipeline_order.clear()
            emulator._pipelines_changed()

    found = problems(spec_dir, out_of_order)
    messages = [f"{f.subject}: {f.message}" for f in found]
    assert any("is not in the pipeline order" in m and "do-operation-errors" in m for m in messages)
    timing = next(m for m in messages if "intake time" in m)
    assert "4 of the 4 newest" in timing
    assert "60 s after EventTimestampMs" in timing
    assert "logs-stopped" in timing


def test_a_pipeline_edited_in_datadog_is_reported(spec_dir: Path) -> None:
    def without_date_remapper(pipeline: dict[str, Any]) -> None:
        pipeline["processors"] = pipeline["processors"][1:]

    messages = [f"{f.subject}: {f.message}" for f in problems(spec_dir, edit_pipeline(without_date_remapper))]
    assert any("differs from the rendered pipeline" in m for m in messages)
    assert any("intake time" in m for m in messages)


def test_structured_lines_never_parsed_are_found(spec_dir: Path) -> None:
    def string_builder_skips(pipeline: dict[str, Any]) -> None:
        # As if Datadog's select wrote the Message array in a shape the string builder cannot use.
        pipeline["processors"][2]["template"] = "%{nothing}"

    messages = [f"{f.subject}: {f.message}" for f in problems(spec_dir, edit_pipeline(string_builder_skips))]
    line = next(m for m in messages if m.startswith("Datadog structured line"))
    assert "the string builder set @extalerts_line on none of them" in line
    assert "do-operation-errors" in line


def test_without_a_logs_search_api_event_time_is_reported_unchecked(spec_dir: Path) -> None:
    def no_search(emulator: DatadogEmulator) -> None:
        emulator._routes = [route for route in emulator._routes if "events/search" not in route[1].pattern]

    with org(spec_dir, break_it=no_search) as (_, api):
        findings = datadog_doctor(load_spec([spec_dir]), api)
    assert [f for f in findings if not f.ok] == []
    assert any("event time cannot be checked" in f.message for f in findings)


def test_cli_prints_one_line_per_problem_and_exits_1(spec_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    with org(spec_dir, break_it=lambda emulator: emulator.remove_facet("@Event.Response.Status")) as (emulator, _):
        code, out, _ = cli_run("doctor", "--provider", "datadog", "--api-url", emulator.url, str(spec_dir))
        assert code == 1
        flagged = [line for line in out.splitlines() if line.startswith("PROBLEM")]
        assert len(flagged) == 1
        assert "@Event.Response.Status" in flagged[0]
        assert "worker-exception" in flagged[0]
        assert out.rstrip().endswith("1 problem")
        code, out, _ = cli_run(
            "doctor", "--provider", "datadog", "--api-url", emulator.url, "-o", "json", str(spec_dir)
        )
        assert code == 1
        assert [f["subject"] for f in json.loads(out) if not f["ok"]] == [
            "Datadog facet @Event.Response.Status (integer)"
        ]
    assert API_KEY not in out
