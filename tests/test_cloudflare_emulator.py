"""The Cloudflare emulator, driven by the official ``cloudflare`` SDK the way the Cloudflare provider will drive it.

Answers are also parsed with the SDK's generated response models (reference §4.5), so the emulator cannot drift
from the shapes the SDK was generated from.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import Cloudflare
from cloudflare.types.alerting import Policy
from cloudflare.types.alerting.destinations import Webhooks
from cloudflare.types.logpush import LogpushJob
from cloudflare.types.workers import ScriptSetting

from extalerts.emulators.base import Faults
from extalerts.emulators.cloudflare import (
    MAX_FILTER_OPERATORS,
    WORKERS_TRACE_EVENTS_FIELDS,
    CloudflareEmulator,
    check_destination,
)

TOKEN = "emulator-api-token"
ACCOUNT = "0123456789abcdef0123456789abcdef"
NOW = 1_752_470_000.0
DATADOG = (
    "datadog://http-intake.logs.datadoghq.eu/api/v2/logs?header_DD-API-KEY=abcd1234&ddsource=cloudflare"
    "&service=my-worker&host=cloudflare-workers&ddtags=env%3Aprod"
)
SPLUNK = (
    "splunk://http-inputs-acme.splunkcloud.com:443/services/collector/raw"
    "?channel=0f8b2c9e-5d6a-4c1e-9b7a-2f4e6d8c1a3b&insecure-skip-verify=false&sourcetype=cloudflare%3Ajson"
    "&header_Authorization=Splunk%20e6d94e8c-5792-4ad1-be3c-29bcaee0197d"
)
FIELDS = ["EventTimestampMs", "Outcome", "ScriptName", "Exceptions", "Logs"]
NOT_OK = json.dumps({"where": {"key": "Outcome", "operator": "!eq", "value": "ok"}})
ENVELOPE_KEYS = {"success", "errors", "messages", "result"}


@pytest.fixture(autouse=True)
def _no_stray_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends the first of email > key > token it finds; stray env vars would override ``api_token``."""
    for name in (
        "CLOUDFLARE_EMAIL",
        "CLOUDFLARE_API_KEY",
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_API_USER_SERVICE_KEY",
        "CLOUDFLARE_BASE_URL",
        "CLOUDFLARE_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def running() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(api_token=TOKEN, account_id=ACCOUNT, clock=lambda: NOW) as server:
        yield server


@pytest.fixture
def emulator(running: CloudflareEmulator) -> CloudflareEmulator:
    """One server for the module (stopping one costs a poll interval), reset to a fresh account per test."""
    running.reset()
    return running


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    """Shared, so the SDK does not build an HTTP client (and its TLS context, ~30 ms) per test."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def cf(emulator: CloudflareEmulator, http_client: httpx.Client) -> Cloudflare:
    return Cloudflare(api_token=TOKEN, base_url=emulator.url, max_retries=0, http_client=http_client)


def send(emulator: CloudflareEmulator, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> Any:
    """A raw request (path after /client/v4): the status and the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emulator.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def create_job(cf: Cloudflare, **overrides: Any) -> LogpushJob:
    params: dict[str, Any] = {
        "account_id": ACCOUNT,
        "dataset": "workers_trace_events",
        "name": "extalerts-errors",
        "destination_conf": DATADOG,
        "filter": NOT_OK,
        "output_options": {"field_names": FIELDS, "timestamp_format": "rfc3339", "cve_2021_44228": True},
    }
    job = cf.logpush.jobs.create(**(params | overrides))
    assert job is not None
    return job


def filter_of(job: LogpushJob | None) -> Any:
    """The job's filter: LogpushJob (SDK 5.9) does not declare ``filter``, so it only lives in ``model_extra``."""
    assert job is not None
    return (job.model_extra or {}).get("filter")


def error_of(excinfo: pytest.ExceptionInfo[cloudflare.APIStatusError]) -> tuple[int | None, str]:
    first = excinfo.value.errors[0]
    return first.code, first.message or ""


# --------------------------------------------------------------------------------------- auth and envelope


def test_a_missing_or_wrong_token_is_refused_with_cloudflares_envelope(
    emulator: CloudflareEmulator, http_client: httpx.Client
) -> None:
    expected = {
        "success": False,
        "errors": [{"code": 10000, "message": "Authentication error"}],
        "messages": [],
        "result": None,
    }
    assert send(emulator, "GET", f"/accounts/{ACCOUNT}/logpush/jobs", token=None) == (403, expected)
    assert send(emulator, "GET", f"/accounts/{ACCOUNT}/logpush/jobs", token="wrong") == (403, expected)

    wrong = Cloudflare(api_token="wrong", base_url=emulator.url, max_retries=0, http_client=http_client)
    with pytest.raises(cloudflare.PermissionDeniedError) as excinfo:
        wrong.logpush.jobs.list(account_id=ACCOUNT)
    assert excinfo.value.status_code == 403
    assert error_of(excinfo) == (10000, "Authentication error")


def test_another_account_is_refused(cf: Cloudflare) -> None:
    with pytest.raises(cloudflare.PermissionDeniedError):
        cf.logpush.jobs.list(account_id="ffffffffffffffffffffffffffffffff")


def test_a_stray_cloudflare_email_silently_replaces_the_token(
    emulator: CloudflareEmulator, http_client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "someone@example.com")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "global-key")
    client = Cloudflare(api_token=TOKEN, base_url=emulator.url, max_retries=0, http_client=http_client)
    with pytest.raises(cloudflare.PermissionDeniedError):
        client.logpush.jobs.list(account_id=ACCOUNT)
    # Passing api_email=None does not help: None means "read the environment".
    again = Cloudflare(api_token=TOKEN, api_email=None, base_url=emulator.url, http_client=http_client)
    assert again.api_email == "someone@example.com"


def test_every_answer_is_exactly_the_v4_envelope(emulator: CloudflareEmulator) -> None:
    created = send(emulator, "POST", f"/accounts/{ACCOUNT}/logpush/jobs", {"dataset": "workers_trace_events"})
    listed = send(emulator, "GET", f"/accounts/{ACCOUNT}/logpush/jobs")
    unrouted = send(emulator, "GET", f"/zones/{ACCOUNT}/logpush/jobs")
    malformed = send(emulator, "POST", f"/accounts/{ACCOUNT}/alerting/v3/policies", ["not", "an", "object"])
    for status, answer in (created, listed, unrouted, malformed):
        assert set(answer) == ENVELOPE_KEYS
        assert answer["success"] is (status == 200)
        assert (answer["result"] is None) is (status != 200)
    assert listed == (200, {"success": True, "errors": [], "messages": [], "result": []})
    assert created[0] == 400
    assert [e["code"] for e in unrouted[1]["errors"]] == [7003, 7000]
    assert unrouted[1]["errors"][1]["message"] == "No route for that URI"
    assert malformed[1]["errors"][0]["code"] == 6007


# --------------------------------------------------------------------------------------- Logpush jobs


def test_a_created_job_is_disabled_and_carries_the_servers_fields(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    job = create_job(cf)
    assert isinstance(job.id, int)
    assert job.enabled is False
    assert (job.last_complete, job.last_error, job.error_message) == (None, None, None)
    assert job.dataset == "workers_trace_events"
    assert filter_of(job) == NOT_OK
    assert "filter" not in LogpushJob.model_fields  # the SDK's model lacks it; the API sends it
    assert job.output_options is not None
    assert job.output_options.field_names == FIELDS
    assert job.output_options.timestamp_format == "rfc3339"
    assert job.output_options.cve_2021_44228 is True
    # The server fills what the request left out (the provider must not diff against these).
    assert job.output_options.output_type == "ndjson"
    assert (job.output_options.record_prefix, job.output_options.record_suffix) == ("{", "}\n")
    assert job.output_options.sample_rate == 1.0

    status, raw = send(emulator, "GET", f"/accounts/{ACCOUNT}/logpush/jobs/{job.id}")
    assert status == 200
    assert raw["result"]["output_options"]["CVE-2021-44228"] is True  # the SDK's alias, on the wire
    assert LogpushJob.model_validate(raw["result"]) == job
    assert [j.id for j in cf.logpush.jobs.list(account_id=ACCOUNT) if j] == [job.id]
    assert cf.logpush.jobs.get(job.id, account_id=ACCOUNT) == job


def test_enabled_true_on_create_is_honoured(cf: Cloudflare) -> None:
    assert create_job(cf, enabled=True).enabled is True


def test_a_raw_snake_case_cve_key_is_ignored_like_any_unknown_key(cf: Cloudflare) -> None:
    job = create_job(cf, extra_body={"output_options": {"field_names": FIELDS, "cve_2021_44228": True}})
    assert job.output_options is not None
    assert job.output_options.cve_2021_44228 is False


def test_update_changes_what_it_names_and_replaces_output_options_wholesale(cf: Cloudflare) -> None:
    job = create_job(cf, max_upload_interval_seconds=60)
    assert job.id is not None

    enabled = cf.logpush.jobs.update(job.id, account_id=ACCOUNT, enabled=True)
    assert enabled is not None
    assert enabled.enabled is True
    assert (filter_of(enabled), enabled.output_options, enabled.max_upload_interval_seconds) == (
        filter_of(job),
        job.output_options,
        60,
    )

    updated = cf.logpush.jobs.update(job.id, account_id=ACCOUNT, output_options={"field_names": ["Outcome"]})
    assert updated is not None
    assert updated.output_options is not None
    assert updated.output_options.field_names == ["Outcome"]
    assert updated.output_options.timestamp_format == "unixnano"  # omitted: back to the default
    assert updated.output_options.cve_2021_44228 is False
    assert updated.enabled is True


def test_the_dataset_is_fixed_at_creation(cf: Cloudflare) -> None:
    job = create_job(cf)
    assert job.id is not None
    same = cf.logpush.jobs.update(job.id, account_id=ACCOUNT, extra_body={"dataset": "workers_trace_events"})
    assert same is not None
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        cf.logpush.jobs.update(job.id, account_id=ACCOUNT, extra_body={"dataset": "audit_logs"})
    code, message = error_of(excinfo)
    assert code == 1004
    assert "dataset cannot be changed" in message
    with pytest.raises(cloudflare.BadRequestError):
        cf.logpush.jobs.update(job.id, account_id=ACCOUNT, kind="edge")


@pytest.mark.parametrize(
    ("dataset", "fragment"),
    [
        ("http_requests", "zone-scoped"),
        ("no_such_dataset", "unknown dataset"),
    ],
)
def test_datasets_must_be_known_and_account_scoped(cf: Cloudflare, dataset: str, fragment: str) -> None:
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create_job(cf, dataset=dataset, filter=None, output_options=None)
    assert fragment in error_of(excinfo)[1]


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        (
            {"key": "EventTimestampMs", "operator": "in", "value": "200,201"},
            'bad predicate: failed to decode value "\\"200,201\\"", supported kinds: []uint64',
        ),
        ({"key": "ScriptName", "operator": "in", "value": "a,b"}, "supported kinds: []string"),
        ({"key": "CPUTimeMs", "operator": "gt", "value": "50"}, "supported kinds: uint64"),
        ({"key": "Outcome", "operator": "like", "value": "ok"}, 'unknown operator "like"'),
        ({"key": "Outcome", "operator": "lt", "value": "ok"}, 'operator "lt" is not supported'),
        ({"key": "Event", "operator": "eq", "value": "x"}, "cannot be filtered"),
        ({"key": "Exceptions", "operator": "contains", "value": "x"}, "cannot be filtered"),
        ({"key": "ScriptTags", "operator": "eq", "value": "prod"}, 'operator "eq" is not supported'),
        ({"key": "Status", "operator": "eq", "value": 500}, 'unknown field "Status"'),
        ({"key": "Outcome", "operator": "eq"}, "Key is missing: value"),
        ({"and": []}, "non-empty array"),
        ({"or": [{"key": "Outcome", "operator": "eq", "value": "ok"}] * (MAX_FILTER_OPERATORS + 1)}, "operators"),
    ],
)
def test_filters_are_checked_against_the_grammar(cf: Cloudflare, where: Any, fragment: str) -> None:
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create_job(cf, filter=json.dumps({"where": where}))
    code, message = error_of(excinfo)
    assert code == 1004
    assert message.startswith("creating a new job (for workers_trace_events dataset) is not allowed: ")
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (json.dumps({"key": "Outcome", "operator": "eq", "value": "ok"}), "Key is missing"),
        ("{where: nope}", "invalid JSON"),
        (json.dumps({"where": {"key": "ScriptName", "operator": "eq", "value": "x" * 1000}}), "at most 1000"),
    ],
)
def test_a_filter_needs_the_where_root_and_stays_small(cf: Cloudflare, text: str, fragment: str) -> None:
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create_job(cf, filter=text)
    assert fragment in error_of(excinfo)[1]


@pytest.mark.parametrize(
    "where",
    [
        {"key": "Outcome", "operator": "!eq", "value": "ok"},
        {
            "and": [
                {"key": "ScriptName", "operator": "in", "value": ["api-worker", "auth-worker"]},
                {
                    "or": [
                        {"key": "Outcome", "operator": "eq", "value": "exception"},
                        {"key": "CPUTimeMs", "operator": "geq", "value": 50},
                    ]
                },
            ]
        },
        {"key": "ScriptTags", "operator": "contains", "value": "prod"},
        {"key": "EventType", "operator": "startsWith", "value": "fetch"},
        {"key": "WallTimeMs", "operator": "!in", "value": [0, 1]},
    ],
)
def test_documented_filters_are_accepted(cf: Cloudflare, where: dict[str, Any]) -> None:
    text = json.dumps({"where": where})
    assert filter_of(create_job(cf, filter=text)) == text


def test_an_empty_filter_ships_everything(cf: Cloudflare) -> None:
    assert filter_of(create_job(cf, filter="")) == ""
    assert filter_of(create_job(cf, filter=None)) is None


@pytest.mark.parametrize(
    ("setting", "value", "ok"),
    [
        ("max_upload_interval_seconds", 0, True),
        ("max_upload_interval_seconds", 30, True),
        ("max_upload_interval_seconds", 300, True),
        ("max_upload_interval_seconds", 10, False),
        ("max_upload_interval_seconds", 301, False),
        ("max_upload_records", 1_000, True),
        ("max_upload_records", 999, False),
        ("max_upload_records", 1_000_001, False),
        ("max_upload_bytes", 5_000_000, True),
        ("max_upload_bytes", 1_000, False),
    ],
)
def test_max_upload_settings_are_range_checked(cf: Cloudflare, setting: str, value: int, ok: bool) -> None:
    if ok:
        assert getattr(create_job(cf, **{setting: value}), setting) == value
    else:
        with pytest.raises(cloudflare.BadRequestError) as excinfo:
            create_job(cf, **{setting: value})
        assert setting in error_of(excinfo)[1]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"name": "extalerts: errors"}, "name must match"),
        ({"output_options": {"field_names": ["Outcome", "Status"]}}, "Status"),
        ({"output_options": {"field_names": FIELDS, "sample_rate": 0}}, "sample_rate"),
        ({"output_options": {"field_names": FIELDS, "merge_subrequests": True}}, "account-scoped"),
        ({"destination_conf": "https://"}, "error validating destination"),
    ],
)
def test_other_job_fields_are_checked(cf: Cloudflare, overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create_job(cf, **overrides)
    assert fragment in error_of(excinfo)[1]


def test_destinations_that_need_an_ownership_challenge_refuse_without_one(cf: Cloudflare) -> None:
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create_job(cf, destination_conf="s3://bucket/logs?region=us-west-2")
    assert error_of(excinfo)[0] == 1002
    assert create_job(cf, destination_conf="s3://bucket/logs?region=us-west-2", ownership_challenge="token").id


def test_four_jobs_per_account_then_403(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    ids = [create_job(cf, name=f"extalerts-{n}").id for n in range(4)]
    with pytest.raises(cloudflare.PermissionDeniedError) as excinfo:
        create_job(cf, name="extalerts-5")
    assert excinfo.value.status_code == 403
    code, message = error_of(excinfo)
    assert code == 1004
    assert message == "creating a new job (for workers_trace_events dataset) is not allowed: exceeded max jobs allowed"
    assert ids[0] is not None
    cf.logpush.jobs.delete(ids[0], account_id=ACCOUNT)
    assert create_job(cf, name="extalerts-5").id not in ids
    assert len(emulator.jobs()) == 4


def test_delete_answers_the_id_and_the_job_is_gone(cf: Cloudflare) -> None:
    job_id = create_job(cf).id
    assert job_id is not None
    deleted = cf.logpush.jobs.delete(job_id, account_id=ACCOUNT)
    assert deleted is not None
    assert deleted.id == job_id
    with pytest.raises(cloudflare.NotFoundError):
        cf.logpush.jobs.get(job_id, account_id=ACCOUNT)
    with pytest.raises(cloudflare.NotFoundError):
        cf.logpush.jobs.delete(job_id, account_id=ACCOUNT)


def test_job_health_is_set_by_the_helpers(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    job_id = create_job(cf, enabled=True).id
    assert job_id is not None
    emulator.set_job_error(job_id, "error validating destination: error writing object", disable=True)
    failing = cf.logpush.jobs.get(job_id, account_id=ACCOUNT)
    assert failing is not None
    assert failing.last_error == datetime.fromtimestamp(NOW, UTC)
    assert failing.error_message == "error validating destination: error writing object"
    assert failing.enabled is False

    emulator.set_job_complete(job_id)
    healthy = cf.logpush.jobs.get(job_id, account_id=ACCOUNT)
    assert healthy is not None
    assert (healthy.last_error, healthy.error_message) == (None, None)
    assert healthy.last_complete == datetime.fromtimestamp(NOW, UTC)


def test_read_only_fields_in_a_request_are_ignored(cf: Cloudflare) -> None:
    job = create_job(cf, extra_body={"id": 7, "last_error": "2020-01-01T00:00:00Z", "error_message": "x"})
    assert job.id != 7
    assert (job.last_error, job.error_message) == (None, None)


def test_dataset_jobs_and_fields(cf: Cloudflare) -> None:
    job = create_job(cf)
    fields = cf.logpush.datasets.fields.get("workers_trace_events", account_id=ACCOUNT)
    assert isinstance(fields, dict)
    assert set(fields) == set(WORKERS_TRACE_EVENTS_FIELDS)
    listed = cf.logpush.datasets.jobs.get("workers_trace_events", account_id=ACCOUNT)
    assert [j.id for j in listed if j] == [job.id]
    assert list(cf.logpush.datasets.jobs.get("audit_logs", account_id=ACCOUNT)) == []


# --------------------------------------------------------------------------------------- destinations


@pytest.mark.parametrize(
    "destination",
    [
        DATADOG,
        "datadog://http-intake.logs.us5.datadoghq.com/api/v2/logs?header_DD-API-KEY=k&ddsource=cloudflare&ddtags=env:prod",
        "datadog://http-intake.logs.datadoghq.com/v1/input?header_DD-API-KEY=k",
        SPLUNK,
        "r2://bucket/workers/{DATE}?account-id=a&access-key-id=b&secret-access-key=c",
    ],
)
def test_documented_destinations_validate(cf: Cloudflare, destination: str) -> None:
    result = cf.logpush.validate.destination(account_id=ACCOUNT, destination_conf=destination)
    assert result is not None
    assert (result.valid, result.message) == (True, "")


@pytest.mark.parametrize(
    ("destination", "fragment"),
    [
        ("datadog://https://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=k", "intake host"),
        ("datadog://api.datadoghq.com/api/v2/logs?header_DD-API-KEY=k", "intake host"),
        ("datadog://http-intake.logs.datadoghq.com/api/v1/logs?header_DD-API-KEY=k", "path"),
        ("datadog://http-intake.logs.datadoghq.com/api/v2/logs?ddsource=cloudflare", "header_DD-API-KEY"),
        (SPLUNK.replace("/services/collector/raw", "/services/collector/event"), "/services/collector/raw"),
        (SPLUNK.replace(":443", ""), "<host>:<port>"),
        (SPLUNK.replace("channel=0f8b2c9e-5d6a-4c1e-9b7a-2f4e6d8c1a3b&", ""), "channel"),
        (SPLUNK.replace("Splunk%20", "Splunk "), "URL-encoded"),
        (SPLUNK.replace("Splunk%20", ""), "header_Authorization"),
        ("elastic://logs.example.com", "unsupported destination scheme"),
        ("http-intake.logs.datadoghq.com/api/v2/logs", "<scheme>://"),
    ],
)
def test_malformed_destinations_are_invalid_with_a_reason(cf: Cloudflare, destination: str, fragment: str) -> None:
    result = cf.logpush.validate.destination(account_id=ACCOUNT, destination_conf=destination)
    assert result is not None
    assert result.valid is False
    assert result.message is not None
    assert fragment in result.message
    assert fragment in check_destination(destination)


def test_destination_exists_looks_at_the_jobs(cf: Cloudflare) -> None:
    def exists(destination: str) -> bool | None:
        answer = cf.logpush.validate.destination_exists(account_id=ACCOUNT, destination_conf=destination)
        assert answer is not None
        return answer.exists

    assert exists(DATADOG) is False
    create_job(cf)
    assert exists(DATADOG) is True
    assert exists(SPLUNK) is False


def test_a_datadog_destination_is_exclusive_to_new_jobs(cf: Cloudflare) -> None:
    job_id = create_job(cf, destination_conf=SPLUNK).id
    assert job_id is not None
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        cf.logpush.jobs.update(job_id, account_id=ACCOUNT, destination_conf=DATADOG)
    assert "exclusive to new jobs" in error_of(excinfo)[1]
    moved = SPLUNK.replace("acme", "other")
    updated = cf.logpush.jobs.update(job_id, account_id=ACCOUNT, destination_conf=moved)
    assert updated is not None
    assert updated.destination_conf == moved


# --------------------------------------------------------------------------------------- notifications


def test_policies_crud_with_a_webhook_and_email(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    webhook = cf.alerting.destinations.webhooks.create(
        account_id=ACCOUNT, name="extalerts", url="https://hooks.example.com/cf", secret="s3cret"
    )
    assert webhook is not None
    assert webhook.id is not None
    created = cf.alerting.policies.create(
        account_id=ACCOUNT,
        name="extalerts: Logpush job disabled",
        description="managed-by=extalerts",
        enabled=True,
        alert_type="failing_logpush_job_disabled_alert",
        mechanisms={"email": [{"id": "oncall@example.com"}], "webhooks": [{"id": webhook.id}]},
        filters={},
    )
    assert created is not None
    assert created.id is not None

    status, raw = send(emulator, "GET", f"/accounts/{ACCOUNT}/alerting/v3/policies/{created.id}")
    assert status == 200
    policy = Policy.model_validate(raw["result"])
    assert policy.alert_type == "failing_logpush_job_disabled_alert"
    assert policy.description == "managed-by=extalerts"
    assert policy.mechanisms is not None
    assert [w.id for w in policy.mechanisms.webhooks or []] == [webhook.id]
    assert policy.created == datetime.fromtimestamp(NOW, UTC)
    assert [p.id for p in cf.alerting.policies.list(account_id=ACCOUNT)] == [created.id]

    updated = cf.alerting.policies.update(created.id, account_id=ACCOUNT, enabled=False, alert_interval="30m")
    assert updated is not None
    assert updated.id == created.id
    after = cf.alerting.policies.get(created.id, account_id=ACCOUNT)
    assert after is not None
    assert (after.enabled, after.alert_interval, after.name) == (False, "30m", "extalerts: Logpush job disabled")

    deleted = cf.alerting.policies.delete(created.id, account_id=ACCOUNT)
    assert deleted.success is True
    with pytest.raises(cloudflare.NotFoundError) as excinfo:
        cf.alerting.policies.get(created.id, account_id=ACCOUNT)
    assert error_of(excinfo)[1] == "Policy not found"


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ({"alert_type": "workers_alert"}, 17004, "invalid alert type"),
        ({"mechanisms": {}}, 17102, "mechanism"),
        ({"mechanisms": {"webhooks": [{"id": "0" * 32}]}}, 0, "invalid Webhook ID"),
        ({"mechanisms": {"pagerduty": [{"id": "pd"}]}}, 0, "invalid PagerDuty ID"),
        ({"mechanisms": {"email": [{"id": "not-an-address"}]}}, 17000, "email"),
        ({"alert_type": "http_alert_origin_error"}, 17103, "filters.zones"),
        ({"filters": {"zone": ["z"]}}, 17000, "unknown filter"),
        ({"filters": {"zones": "z"}}, 17000, "list of strings"),
        ({"alert_interval": "soon"}, 17000, "alert_interval"),
    ],
)
def test_policies_are_refused_like_cloudflare_refuses_them(
    cf: Cloudflare, params: dict[str, Any], code: int, fragment: str
) -> None:
    base: dict[str, Any] = {
        "account_id": ACCOUNT,
        "name": "p",
        "enabled": True,
        "alert_type": "failing_logpush_job_disabled_alert",
        "mechanisms": {"email": [{"id": "oncall@example.com"}]},
    }
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        cf.alerting.policies.create(**(base | params))
    got_code, message = error_of(excinfo)
    assert got_code == code
    assert fragment in message


def test_policy_filters_and_pagerduty_when_valid(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    emulator.add_pagerduty("850129d136459401860572c5d964d27k")
    created = cf.alerting.policies.create(
        account_id=ACCOUNT,
        name="origin errors",
        enabled=True,
        alert_type="http_alert_origin_error",
        mechanisms={"pagerduty": [{"id": "850129d136459401860572c5d964d27k"}]},
        filters={"zones": ["023e105f4ecef8ad9ca31a8372d0c353"], "slo": ["99.9"]},
    )
    assert created is not None
    assert created.id is not None
    policy = cf.alerting.policies.get(created.id, account_id=ACCOUNT)
    assert policy is not None
    assert policy.filters is not None
    assert policy.filters.zones == ["023e105f4ecef8ad9ca31a8372d0c353"]


def test_available_alerts_are_grouped_and_extendable(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    catalogue = cf.alerting.available_alerts.list(account_id=ACCOUNT)
    assert catalogue is not None
    types = {item.type for items in catalogue.values() for item in items}
    for wanted in (
        "failing_logpush_job_disabled_alert",
        "http_alert_origin_error",
        "traffic_anomalies_alert",
        "billing_usage_alert",
    ):
        assert wanted in types
    assert [item.type for item in catalogue["Logpush"]] == ["failing_logpush_job_disabled_alert"]
    assert "workers_observability_alert" not in types

    emulator.add_alert_type("Workers", "workers_observability_alert", display_name="Workers Observability Alert")
    created = cf.alerting.policies.create(
        account_id=ACCOUNT,
        name="obs",
        enabled=True,
        alert_type="workers_observability_alert",  # type: ignore[arg-type]
        mechanisms={"email": [{"id": "oncall@example.com"}]},
    )
    assert created is not None


def test_webhooks_crud_never_returns_the_secret(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    created = cf.alerting.destinations.webhooks.create(
        account_id=ACCOUNT, name="slack", url="https://hooks.slack.com/services/T0/B0/x", secret="s3cret"
    )
    assert created is not None
    assert created.id is not None
    status, raw = send(emulator, "GET", f"/accounts/{ACCOUNT}/alerting/v3/destinations/webhooks/{created.id}")
    assert status == 200
    assert "secret" not in raw["result"]
    webhook = Webhooks.model_validate(raw["result"])
    assert (webhook.name, webhook.type) == ("slack", "slack")
    assert emulator.webhook_secret(created.id) == "s3cret"

    updated = cf.alerting.destinations.webhooks.update(
        created.id, account_id=ACCOUNT, name="generic", url="https://hooks.example.com/cf"
    )
    assert updated is not None
    assert updated.id == created.id
    listed = list(cf.alerting.destinations.webhooks.list(account_id=ACCOUNT))
    assert [(w.id, w.name, w.type) for w in listed] == [(created.id, "generic", "generic")]
    assert emulator.webhook_secret(created.id) == "s3cret"  # a PUT without secret keeps it

    assert cf.alerting.destinations.webhooks.delete(created.id, account_id=ACCOUNT).success is True
    with pytest.raises(cloudflare.NotFoundError) as excinfo:
        cf.alerting.destinations.webhooks.get(created.id, account_id=ACCOUNT)
    assert error_of(excinfo)[1] == "Webhook not found"


def test_a_webhook_whose_test_message_fails_is_refused(cf: Cloudflare) -> None:
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        cf.alerting.destinations.webhooks.create(account_id=ACCOUNT, name="x", url="https://hooks.example.invalid/x")
    assert "Webhook test failed" in error_of(excinfo)[1]
    with pytest.raises(cloudflare.BadRequestError):
        cf.alerting.destinations.webhooks.create(account_id=ACCOUNT, name="x", url="ftp://example.com/x")


# --------------------------------------------------------------------------------------- Workers script settings


def test_script_settings_carry_the_logpush_flag(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    emulator.add_script("api-worker", logpush=True, tags=["prod"])
    emulator.add_script("chat-worker", logpush=False)

    settings = cf.workers.scripts.settings.get("api-worker", account_id=ACCOUNT)
    assert (settings.logpush, settings.tags) == (True, ["prod"])
    assert cf.workers.scripts.settings.get("chat-worker", account_id=ACCOUNT).logpush is False
    full = cf.workers.scripts.script_and_version_settings.get("chat-worker", account_id=ACCOUNT)
    assert full.logpush is False

    status, raw = send(emulator, "GET", f"/accounts/{ACCOUNT}/workers/scripts/api-worker/script-settings")
    assert status == 200
    assert ScriptSetting.model_validate(raw["result"]).logpush is True

    edited = cf.workers.scripts.settings.edit("chat-worker", account_id=ACCOUNT, logpush=True)
    assert edited.logpush is True
    assert emulator.script("chat-worker")["logpush"] is True


def test_an_unknown_script_is_404_with_code_10007(cf: Cloudflare) -> None:
    with pytest.raises(cloudflare.NotFoundError) as excinfo:
        cf.workers.scripts.settings.get("missing", account_id=ACCOUNT)
    assert error_of(excinfo) == (10007, "workers.api.error.script_not_found")
    with pytest.raises(cloudflare.NotFoundError):
        cf.workers.scripts.script_and_version_settings.get("missing", account_id=ACCOUNT)


def test_script_settings_carry_workers_logs_as_the_sdk_reads_them(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    logs = {"enabled": True, "invocation_logs": True, "head_sampling_rate": 0.1}
    emulator.add_script("api-worker", observability={"enabled": True, "logs": logs})
    emulator.add_script("chat-worker")
    settings = cf.workers.scripts.settings.get("api-worker", account_id=ACCOUNT)
    assert settings.observability is not None
    assert settings.observability.enabled is True
    assert settings.observability.logs is not None
    assert settings.observability.logs.head_sampling_rate == 0.1
    assert cf.workers.scripts.settings.get("chat-worker", account_id=ACCOUNT).observability is None
    # "The valid range is from 0 to 1" (workers-logs.mdx); logs need both flags (the SDK's ObservabilityLogs).
    for bad in ({"enabled": True, "head_sampling_rate": 1.5}, {"enabled": True, "logs": {"enabled": True}}):
        status, raw = send(
            emulator,
            "PATCH",
            f"/accounts/{ACCOUNT}/workers/scripts/chat-worker/script-settings",
            {"observability": bad},
        )
        assert (status, raw["errors"][0]["code"]) == (400, 10021)
    with pytest.raises(ValueError, match="head_sampling_rate must be a number from 0 to 1"):
        emulator.add_script("bad-worker", observability={"enabled": True, "head_sampling_rate": -0.5})


def test_workers_observability_alert_policies_follow_the_catalogue(
    emulator: CloudflareEmulator, cf: Cloudflare
) -> None:
    def create(**body: Any) -> Any:
        return cf.alerting.policies.create(
            account_id=ACCOUNT,
            name="obs",
            enabled=True,
            alert_type="workers_observability_alert",  # type: ignore[arg-type]
            mechanisms={"email": [{"id": "oncall@example.com"}]},
            **body,
        )

    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create(filters={"status": ["FIRING_FAILED"]})
    assert error_of(excinfo)[0] == 17004  # not offered to this account
    emulator.offer_workers_observability_alert()
    catalogue = cf.alerting.available_alerts.list(account_id=ACCOUNT)
    assert catalogue is not None
    assert [item.type for item in catalogue["Workers Observability"]] == ["workers_observability_alert"]
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create()
    assert error_of(excinfo) == (17103, "filters.status is required for workers_observability_alert")
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create(filters={"status": ["FIRING"]})
    assert "does not take" in error_of(excinfo)[1]
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create(filters={"status": ["FIRING_FAILED"], "selectors": ["extalerts: worker-exception"]})
    assert error_of(excinfo)[1] == 'filter "selectors" is not available for workers_observability_alert'
    with pytest.raises(cloudflare.BadRequestError) as excinfo:
        create(filters={"status": ["FIRING_FAILED"]}, alert_interval="30m")
    assert error_of(excinfo)[0] == 17009
    assert create(filters={"status": ["FIRING_FAILED", "NORMAL"]}) is not None

    emulator.reset()
    emulator.offer_workers_observability_alert(alert_filter=True)
    created = create(filters={"status": ["NORMAL"], "selectors": ["extalerts: worker-exception"]})
    assert created is not None
    assert emulator.policies()[0]["filters"]["selectors"] == ["extalerts: worker-exception"]


def test_the_undocumented_observability_alerts_read_is_switchable(emulator: CloudflareEmulator) -> None:
    path = f"/accounts/{ACCOUNT}/workers/observability/alerts"
    status, raw = send(emulator, "GET", path)
    assert (status, [e["code"] for e in raw["errors"]]) == (400, [7003, 7000])
    emulator.set_observability_alerts(None, absent_status=404)
    assert send(emulator, "GET", path)[0] == 404
    emulator.set_observability_alerts([{"id": "a1", "name": "extalerts: worker-exception"}])
    status, raw = send(emulator, "GET", path)
    assert (status, raw["result"]) == (200, [{"id": "a1", "name": "extalerts: worker-exception"}])
    assert send(emulator, "POST", path, {"name": "x"})[0] == 400  # never writable


# --------------------------------------------------------------------------------------- faults and bookkeeping


def test_a_429_carries_retry_after_and_cloudflares_rate_limit_code(
    emulator: CloudflareEmulator, cf: Cloudflare
) -> None:
    emulator.set_faults(Faults(rate=1.0, kinds=("429",), rate_limit_reset=3))
    with pytest.raises(cloudflare.RateLimitError) as excinfo:
        cf.logpush.jobs.list(account_id=ACCOUNT)
    assert excinfo.value.response.headers["retry-after"] == "3"
    assert error_of(excinfo) == (971, "Please wait and consider throttling your request speed")
    assert emulator.faults_injected["429"] == 1


def test_a_500_is_an_internal_server_error(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    emulator.set_faults(Faults(rate=1.0, kinds=("500",)))
    with pytest.raises(cloudflare.InternalServerError):
        cf.alerting.policies.list(account_id=ACCOUNT)


def test_a_lost_answer_still_commits_the_write(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    emulator.set_faults(Faults(rate=1.0, kinds=("lost",)))
    with pytest.raises(cloudflare.APIConnectionError):
        create_job(cf)
    assert len(emulator.jobs()) == 1


def test_a_slow_answer_times_out(http_client: httpx.Client) -> None:
    # A server of its own: the slow answer is still being written after the test ends.
    with CloudflareEmulator(TOKEN, ACCOUNT, Faults(rate=1.0, kinds=("slow",), slow_seconds=0.3)) as slow:
        client = Cloudflare(api_token=TOKEN, base_url=slow.url, max_retries=0, http_client=http_client)
        with pytest.raises(cloudflare.APITimeoutError):
            client.with_options(timeout=0.1).logpush.jobs.list(account_id=ACCOUNT)
        assert slow.faults_injected["slow"] == 1


def test_calls_are_counted_per_route_and_requests_logged(emulator: CloudflareEmulator, cf: Cloudflare) -> None:
    job_id = create_job(cf).id
    assert job_id is not None
    cf.logpush.jobs.get(job_id, account_id=ACCOUNT)
    cf.logpush.jobs.get(job_id, account_id=ACCOUNT)
    assert emulator.calls["GET /accounts/{account}/logpush/jobs/{job}"] == 2
    assert emulator.calls["POST /accounts/{account}/logpush/jobs"] == 1
    method, path, body, status = emulator.requests[0]
    assert (method, path, status) == ("POST", f"/client/v4/accounts/{ACCOUNT}/logpush/jobs", 200)
    assert body["dataset"] == "workers_trace_events"
    assert body["output_options"]["CVE-2021-44228"] is True
