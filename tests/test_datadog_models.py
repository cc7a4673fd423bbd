"""Rendered Datadog documents and the Datadog emulator, held to the models of the official ``datadog-api-client``.

This is the part of the Datadog contract that needs nothing beside the repository, so it runs in ``make test``;
the published JSON Schemas are checked by ``make contracts`` (tests/contracts/). The oracle here is the
client's own deserialiser with its type checks on, plus what that deserialiser lets through silently: fields a
model does not declare, enum values it does not know, ``oneOf`` values that match no variant, read-only fields.
It is written independently of ``extalerts.render.datadog._model_problems`` (which the renderer and the
emulator use), so that the emulator is compared with the client, not with itself.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datadog_api_client import Configuration
from datadog_api_client.exceptions import OpenApiException
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    ModelSimple,
    UnparsedObject,
    validate_and_convert_types,
)
from datadog_api_client.v1.model.logs_pipeline import LogsPipeline
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest
from datadog_api_client.v2.model.logs_metric_create_request import LogsMetricCreateRequest

from extalerts.emulators.datadog import DatadogEmulator
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import MONITORS, REPO
from tests.contract_spec import Rendered, report

RENDERED = REPO / "rendered" / "datadog"
#: The model each folder of rendered Datadog documents must deserialise into.
MODELS: dict[str, type[Any]] = {
    "monitors": Monitor,
    "logs-metrics": LogsMetricCreateRequest,
    "pipelines": LogsPipeline,
}
KEYS = {"DD-API-KEY": "contract-api-key", "DD-APPLICATION-KEY": "contract-app-key"}

# --------------------------------------------------------------------------------------------- the oracle


def model_problems(model: type[Any], document: Any) -> list[str]:
    """Why the client would not send ``document`` as ``model`` ([] when it would)."""
    try:
        instance = validate_and_convert_types(
            copy.deepcopy(document), (model,), ["body"], True, True, configuration=Configuration()
        )
    except (OpenApiException, TypeError, ValueError) as exc:  # a missing required argument is a TypeError
        return [str(exc)]
    problems: list[str] = []
    _let_through(instance, "", problems)
    return problems


def _let_through(value: Any, where: str, problems: list[str]) -> None:
    """What the deserialiser accepts without complaint but the API would refuse or ignore."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            _let_through(item, f"{where}[{index}]", problems)
    elif isinstance(value, ModelSimple):
        if getattr(value, "_unparsed", False):
            problems.append(f"{where}: {value.value!r} is not a value of {type(value).__name__}")
    elif isinstance(value, ModelComposed):
        variants = value._composed_instances
        if not variants:
            problems.append(f"{where}: matches no variant of {type(value).__name__}")
        for variant in variants:
            _let_through(variant, where, problems)
    elif isinstance(value, UnparsedObject):
        # What the client makes of an object that fits none of the models it could be.
        problems.append(f"{where}: matches none of the models the client has for it")
    elif isinstance(value, ModelNormal):
        model = type(value)
        for key, item in value._data_store.items():
            path = f"{where}.{key}" if where else key
            if key not in model.openapi_types:
                problems.append(f"{path}: not a field of {model.__name__}")
            elif key in model.read_only_vars:
                problems.append(f"{path}: read-only in {model.__name__}")
            else:
                _let_through(item, path, problems)


def round_trip(model: type[Any], document: dict[str, Any]) -> dict[str, Any]:
    """``document`` read by the client and written back: what the client would put on the wire."""
    instance = validate_and_convert_types(
        copy.deepcopy(document), (model,), ["body"], True, True, configuration=Configuration()
    )
    written: dict[str, Any] = instance.to_dict()
    return written


BASE = {
    "name": "contract probe",
    "type": "log alert",
    "query": 'logs("source:cloudflare").index("*").rollup("count").last("5m") > 5',
    "message": "m",
    "options": {"thresholds": {"critical": 5}},
}


def _variant(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


#: Monitor bodies, valid and not (tests/contracts/ sends the first twelve and compares with the published schema).
BODIES = {
    "valid": _variant(BASE),
    "with priority and tags": _variant(BASE, priority=2, tags=["a:b"]),
    "missing type": _variant(BASE, type=None),
    "missing query": _variant(BASE, query=None),
    "read-only id": _variant(BASE, id=5),
    "read-only overall_state": _variant(BASE, overall_state="OK"),
    "priority out of type": _variant(BASE, priority="high"),
    "tags not a list": _variant(BASE, tags="a:b"),
    "thresholds not numbers": _variant(BASE, options={"thresholds": {"critical": "five"}}),
    "unknown on_missing_data": _variant(BASE, options={"thresholds": {"critical": 5}, "on_missing_data": "maybe"}),
    "unknown type": _variant(BASE, type="telepathy alert"),
    "name not text": _variant(BASE, name=5),
    "misspelt option": _variant(BASE, options={"thresholds": {"critical": 5}, "notify_nodata": True}),
    "misspelt threshold": _variant(BASE, options={"thresholds": {"critical": 5, "critcal": 5}}),
    "read-only option": _variant(BASE, options={"thresholds": {"critical": 5}, "device_ids": ["laptop_large"]}),
}

PIPELINE: dict[str, Any] = json.loads((RENDERED / "pipelines" / "extalerts-structured-logs.json").read_text())
_PROCESSOR = PIPELINE["processors"][0]
PIPELINE_BODIES = {
    "valid": PIPELINE,
    "missing name": _variant(PIPELINE, name=None),
    "read-only id": _variant(PIPELINE, id="abc"),
    "is_enabled not a boolean": _variant(PIPELINE, is_enabled="yes"),
    "unknown processor field": _variant(PIPELINE, processors=[{**_PROCESSOR, "match": "x"}]),
    "unknown processor type": _variant(PIPELINE, processors=[{**_PROCESSOR, "type": "telepathy-parser"}]),
    "processors not a list": _variant(PIPELINE, processors=_PROCESSOR),
}

METRIC = {
    "data": {"id": "extalerts.probe", "type": "logs_metrics", "attributes": {"compute": {"aggregation_type": "count"}}}
}
METRIC_BODIES = {
    "valid": METRIC,
    "misspelt compute field": {
        "data": {**METRIC["data"], "attributes": {"compute": {"aggregation_type": "count", "aggregation": "count"}}}
    },
    "unknown aggregation": {"data": {**METRIC["data"], "attributes": {"compute": {"aggregation_type": "median"}}}},
    "missing id": {"data": {k: v for k, v in METRIC["data"].items() if k != "id"}},
}


@pytest.mark.parametrize(
    ("model", "body", "accepted"),
    [
        pytest.param(Monitor, BODIES["valid"], True, id="monitor"),
        pytest.param(Monitor, BODIES["misspelt option"], False, id="monitor-unknown-field"),
        pytest.param(Monitor, BODIES["unknown type"], False, id="monitor-unknown-enum"),
        pytest.param(Monitor, BODIES["read-only option"], False, id="monitor-nested-read-only"),
        pytest.param(Monitor, BODIES["missing type"], False, id="monitor-missing-required"),
        pytest.param(LogsPipeline, PIPELINE_BODIES["unknown processor field"], False, id="pipeline-variant-field"),
        pytest.param(LogsPipeline, PIPELINE_BODIES["unknown processor type"], False, id="pipeline-no-variant"),
        pytest.param(LogsMetricCreateRequest, METRIC_BODIES["misspelt compute field"], False, id="metric-field"),
    ],
)
def test_the_oracle_sees_what_the_deserialiser_lets_through(model: type[Any], body: Any, accepted: bool) -> None:
    assert (model_problems(model, body) == []) is accepted, model_problems(model, body)


# --------------------------------------------------------------------------------------------- rendered


def _committed() -> list[Path]:
    return sorted(RENDERED.glob("*/*.json"))


@pytest.mark.parametrize("path", _committed(), ids=lambda p: p.relative_to(RENDERED).as_posix())
def test_committed_datadog_documents_deserialise_into_the_client_models(path: Path) -> None:
    folder = path.parent.name
    assert folder in MODELS, f"rendered/datadog/{folder}/: no client model is known for it; add it to MODELS"
    document = json.loads(path.read_text(encoding="utf-8"))
    assert model_problems(MODELS[folder], document) == []
    assert round_trip(MODELS[folder], document) == document, "the client would not send what was rendered"


def test_every_kind_of_committed_datadog_document_is_checked() -> None:
    assert {path.parent.name for path in _committed()} == set(MODELS)


def test_contract_spec_datadog_documents_deserialise_into_the_client_models(rendered: Rendered) -> None:
    """Every signal and target shape (tests/contract_spec.py), not only the ones monitors/ uses."""
    problems: list[str] = []
    for folder, model in MODELS.items():
        for file, document in rendered.json_under(f"datadog/{folder}/"):
            problems.extend(f"{file.path}: {p}" for p in model_problems(model, document))
            if round_trip(model, document) != document:
                problems.append(f"{file.path}: the client would not send what was rendered")
    assert not problems, report(problems)


# --------------------------------------------------------------------------------------------- emulator


@pytest.fixture
def emulator() -> Iterator[DatadogEmulator]:
    with DatadogEmulator(KEYS["DD-API-KEY"], KEYS["DD-APPLICATION-KEY"]) as running:
        yield running


def send(emulator: DatadogEmulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emulator.url + path, data=data, method=method, headers={**KEYS})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _assert_answer(status: int, answer: Any, accepted: bool, case: str) -> None:
    assert (status == 200) is accepted, (case, status, answer)
    if not accepted:
        assert status == 400, (case, status)
        assert isinstance(answer["errors"], list)
        assert answer["errors"], case
        assert all(isinstance(e, str) for e in answer["errors"])


@pytest.mark.parametrize("case", sorted(BODIES))
def test_emulator_creates_exactly_the_monitors_the_client_models_accept(emulator: DatadogEmulator, case: str) -> None:
    status, answer = send(emulator, "POST", "/api/v1/monitor", BODIES[case])
    _assert_answer(status, answer, model_problems(Monitor, BODIES[case]) == [], case)


@pytest.mark.parametrize(
    "body", [{"name": "renamed"}, {"priority": "x"}, {"id": 3}, {"options": {"notify_nodata": True}}], ids=str
)
def test_emulator_updates_exactly_as_the_update_model_accepts(emulator: DatadogEmulator, body: dict[str, Any]) -> None:
    _, monitor = send(emulator, "POST", "/api/v1/monitor", BASE)
    status, answer = send(emulator, "PUT", f"/api/v1/monitor/{monitor['id']}", body)
    _assert_answer(status, answer, model_problems(MonitorUpdateRequest, body) == [], str(body))


@pytest.mark.parametrize("case", sorted(PIPELINE_BODIES))
def test_emulator_creates_exactly_the_pipelines_the_client_model_accepts(emulator: DatadogEmulator, case: str) -> None:
    status, answer = send(emulator, "POST", "/api/v1/logs/config/pipelines", PIPELINE_BODIES[case])
    _assert_answer(status, answer, model_problems(LogsPipeline, PIPELINE_BODIES[case]) == [], case)


@pytest.mark.parametrize("case", sorted(METRIC_BODIES))
def test_emulator_creates_exactly_the_metrics_the_client_model_accepts(emulator: DatadogEmulator, case: str) -> None:
    status, answer = send(emulator, "POST", "/api/v2/logs/config/metrics", METRIC_BODIES[case])
    _assert_answer(status, answer, model_problems(LogsMetricCreateRequest, METRIC_BODIES[case]) == [], case)


def test_every_body_extalerts_sends_is_one_the_client_models_accept(emulator: DatadogEmulator) -> None:
    provider = DatadogProvider(DatadogApi(DatadogSettings(emulator.url, *KEYS.values()), RetryPolicy(time_scale=0)))
    desired = provider.desired(load_spec([MONITORS]))
    assert apply_plan(compute_plan(provider, desired, provider.fetch(), prune=False), provider).ok
    models = {
        ("POST", "/api/v1/monitor"): Monitor,
        ("POST", "/api/v1/monitor/validate"): Monitor,
        ("POST", "/api/v2/logs/config/metrics"): LogsMetricCreateRequest,
        ("POST", "/api/v1/logs/config/pipelines"): LogsPipeline,
    }
    problems: list[str] = []
    checked: dict[str, int] = {}
    for method, path, body, status in emulator.requests:
        assert status == 200, (method, path, body)
        model = models.get((method, path))
        if model is not None:
            problems.extend(f"{method} {path}: {p}" for p in model_problems(model, body))
            checked[model.__name__] = checked.get(model.__name__, 0) + 1
    assert not problems, report(problems)
    rules = len(list((RENDERED / "monitors").glob("*.json")))
    assert checked == {"Monitor": rules * 2, "LogsMetricCreateRequest": 1, "LogsPipeline": 1}


def test_emulator_requires_both_keys(emulator: DatadogEmulator) -> None:
    request = urllib.request.Request(emulator.url + "/api/v1/monitor", headers={"DD-API-KEY": KEYS["DD-API-KEY"]})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 403
