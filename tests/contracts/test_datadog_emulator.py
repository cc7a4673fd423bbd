"""The Datadog emulator is held to Datadog's published contract, not to extalerts' own assumptions.

The contract is the JSON Schema of the monitor request bodies in ../shared/contracts (read in place,
``make contracts``). tests/test_datadog_models.py holds the emulator to the datadog-api-client models.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from extalerts.emulators.datadog import DatadogEmulator
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import MONITORS
from tests.contracts.conftest import contract_json

KEYS = {"DD-API-KEY": "contract-api-key", "DD-APPLICATION-KEY": "contract-app-key"}


def read_only_properties(schema: dict[str, Any]) -> set[str]:
    return {name for name, prop in schema.get("properties", {}).items() if prop.get("readOnly")}


def contract_accepts(schema: dict[str, Any], body: dict[str, Any]) -> bool:
    """Valid against the schema and free of read-only properties (the contracts README says to add that)."""
    if list(Draft202012Validator(schema).iter_errors(body)):
        return False
    return not (set(body) & read_only_properties(schema))


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


def test_every_body_extalerts_sends_meets_the_contract(emulator: DatadogEmulator) -> None:
    provider = DatadogProvider(DatadogApi(DatadogSettings(emulator.url, *KEYS.values()), RetryPolicy(time_scale=0)))
    desired = provider.desired(load_spec([MONITORS]))
    assert apply_plan(compute_plan(provider, desired, provider.fetch(), prune=False), provider).ok
    create = contract_json("datadog-v1-monitor.schema.json")
    metric = contract_json("datadog-v2-logs-metric-create.schema.json")
    checked = 0
    for method, path, body, status in emulator.requests:
        assert status == 200, (method, path, body)
        if method == "POST" and path in ("/api/v1/monitor", "/api/v1/monitor/validate"):
            assert contract_accepts(create, body), body["name"]
            checked += 1
        elif method == "POST" and path == "/api/v2/logs/config/metrics":
            assert contract_accepts(metric, body)
            checked += 1
    assert checked == 13 * 2 + 1


BASE = {
    "name": "contract probe",
    "type": "log alert",
    "query": 'logs("source:cloudflare").index("*").rollup("count").last("5m") > 5',
    "message": "m",
    "options": {"thresholds": {"critical": 5}},
}


def _variant(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


BODIES = {
    "valid": _variant(),
    "with priority and tags": _variant(priority=2, tags=["a:b"]),
    "missing type": _variant(type=None),
    "missing query": _variant(query=None),
    "read-only id": _variant(id=5),
    "read-only overall_state": _variant(overall_state="OK"),
    "priority out of type": _variant(priority="high"),
    "tags not a list": _variant(tags="a:b"),
    "thresholds not numbers": _variant(options={"thresholds": {"critical": "five"}}),
    "unknown on_missing_data": _variant(options={"thresholds": {"critical": 5}, "on_missing_data": "maybe"}),
    "unknown type": _variant(type="telepathy alert"),
    "name not text": _variant(name=5),
}


@pytest.mark.parametrize("case", sorted(BODIES))
def test_emulator_accepts_exactly_what_the_contract_accepts(emulator: DatadogEmulator, case: str) -> None:
    body = BODIES[case]
    schema = contract_json("datadog-v1-monitor.schema.json")
    status, answer = send(emulator, "POST", "/api/v1/monitor", body)
    assert (status == 200) is contract_accepts(schema, body), (case, status, answer)
    if status != 200:
        assert status == 400
        assert isinstance(answer["errors"], list)
        assert all(isinstance(e, str) for e in answer["errors"])


def test_emulator_fills_in_server_owned_fields_the_contract_marks_read_only(emulator: DatadogEmulator) -> None:
    status, monitor = send(emulator, "POST", "/api/v1/monitor", BASE)
    assert status == 200
    read_only = read_only_properties(contract_json("datadog-v1-monitor.schema.json"))
    for field in ("id", "created", "creator", "modified", "multi", "overall_state"):
        assert field in read_only
        assert field in monitor
    assert monitor["options"]["new_host_delay"] == 300
    assert monitor["options"]["include_tags"] is True


def test_update_contract(emulator: DatadogEmulator) -> None:
    _, monitor = send(emulator, "POST", "/api/v1/monitor", BASE)
    schema = contract_json("datadog-v1-monitor-update.schema.json")
    for body, ok in (({"name": "renamed"}, True), ({"priority": "x"}, False), ({"id": 3}, False)):
        assert contract_accepts(schema, body) is ok
        status, _ = send(emulator, "PUT", f"/api/v1/monitor/{monitor['id']}", body)
        assert (status == 200) is ok, body
