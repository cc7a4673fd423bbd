"""The Logpush provider: the spec's Logpush jobs, kept in sync through the official ``cloudflare`` SDK.

Ownership: jobs of the account named ``extalerts-<name>``; jobs have no tags, so the name prefix is
the marker, and nothing without it is touched.

``destination_conf`` is built at push time from DD_API_KEY or SPLUNK_HEC_TOKEN; it is never written
to a file, and every plan shows it with its secret parts replaced by a short hash, so a changed key
shows as changed without being shown. Filters compare as parsed JSON; ``output_options`` is sent
whole (a PUT replaces it) and compared on the keys extalerts sets; a changed dataset replaces the job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from extalerts.errors import ApiError, ConfigError
from extalerts.providers.base import Action, Change, Resource
from extalerts.providers.cloudflare_api import CloudflareApi
from extalerts.redact import redact, secret_digest
from extalerts.spec.loader import Spec
from extalerts.spec.models import LogpushJob

LOGPUSH_JOB = "logpush_job"
NAME_PREFIX = "extalerts-"
DATASET = "workers_trace_events"
SECRET_PARAMS = ("header_dd-api-key", "header_authorization")


def job_name(name: str) -> str:
    return NAME_PREFIX + name


def destination_conf(job: LogpushJob, env: Mapping[str, str] | None = None) -> str:
    """The job's destination, with its secret from the environment."""
    environ = os.environ if env is None else env
    if job.datadog is not None:
        key = environ.get("DD_API_KEY")
        if not key:
            raise ConfigError("DD_API_KEY is not set; a Datadog Logpush job needs it in its destination")
        redact(key)
        d = job.datadog
        params: list[tuple[str, str]] = [("header_DD-API-KEY", key), ("ddsource", "cloudflare")]
        if d.service:
            params.append(("service", d.service))
        if d.host:
            params.append(("host", d.host))
        if d.tags:
            params.append(("ddtags", ",".join(d.tags)))
        return f"datadog://http-intake.logs.{d.site}/api/v2/logs?{urlencode(params, quote_via=quote)}"
    assert job.splunk is not None
    token = environ.get("SPLUNK_HEC_TOKEN")
    if not token:
        raise ConfigError("SPLUNK_HEC_TOKEN is not set; a Splunk Logpush job needs it in its destination")
    redact(token)
    s = job.splunk
    params = [
        ("channel", s.channel),
        ("insecure-skip-verify", "true" if s.insecure_skip_verify else "false"),
        ("sourcetype", s.sourcetype),
        ("header_Authorization", f"Splunk {token}"),
    ]
    return f"splunk://{s.endpoint}/services/collector/raw?{urlencode(params, quote_via=quote)}"


def mask_destination(conf: str) -> str:
    """``conf`` with every secret value replaced by a short hash of it: comparable, never readable."""
    parts = urlsplit(conf)
    params = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in SECRET_PARAMS:
            value = secret_digest(value)
        params.append(f"{key}={value}")
    return f"{parts.scheme}://{parts.netloc}{parts.path}?" + "&".join(params)


def output_options(job: LogpushJob) -> dict[str, Any]:
    return {
        "field_names": list(job.shipped_fields),
        "output_type": "ndjson",
        "timestamp_format": "unixnano",
        "sample_rate": job.sample_rate,
        "cve_2021_44228": False,
    }


def _plain(model: Any) -> dict[str, Any]:
    if hasattr(model, "model_dump"):
        dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=False, exclude_none=False)
        return dumped
    return dict(model)


class LogpushProvider:
    """Plan against and push to the Logpush jobs of one Cloudflare account."""

    name: ClassVar[str] = "logpush"

    def __init__(self, api: CloudflareApi) -> None:
        self.api = api

    @property
    def target(self) -> str:
        settings = self.api.settings
        return f"{settings.url} account {settings.account_id}"

    def desired(self, spec: Spec) -> list[Resource]:
        resources = []
        for name, job in spec.logpush.jobs.items():
            body: dict[str, Any] = {
                "name": job_name(name),
                "dataset": DATASET,
                "destination_conf": destination_conf(job),
                "enabled": job.enabled,
                "filter": spec.logpush_filters.get(name),
                "output_options": output_options(job),
                "max_upload_interval_seconds": job.max_upload_interval,
            }
            resources.append(Resource(LOGPUSH_JOB, job_name(name), body))
        return resources

    def fetch(self) -> list[Resource]:
        account = self.api.account_id
        jobs = self.api.call("list Logpush jobs", lambda c: list(c.logpush.jobs.list(account_id=account)))
        found = []
        for job in jobs:
            if job is None:
                continue
            body = _plain(job)
            if str(body.get("name") or "").startswith(NAME_PREFIX):
                found.append(Resource(LOGPUSH_JOB, body["name"], body, live_id=str(body["id"])))
        return found

    def normalise(self, resource: Resource) -> dict[str, Any]:
        body = resource.body
        raw_filter = body.get("filter")
        wanted_options = ("field_names", "output_type", "timestamp_format", "sample_rate", "cve_2021_44228")
        options = body.get("output_options") or {}
        return {
            "dataset": body.get("dataset"),
            "destination_conf": mask_destination(str(body.get("destination_conf") or "")),
            "enabled": bool(body.get("enabled")),
            "filter": json.loads(raw_filter) if raw_filter else None,
            "output_options": {key: options.get(key) for key in wanted_options},
            "max_upload_interval_seconds": body.get("max_upload_interval_seconds") or None,
        }

    def validate(self, changes: Sequence[Change]) -> list[tuple[Change, str]]:
        """Ask Cloudflare whether each new or changed destination accepts logs, before anything is written."""
        problems = []
        account = self.api.account_id
        for change in changes:
            if change.desired is None or change.action not in (Action.CREATE, Action.UPDATE):
                continue
            conf = change.desired.body["destination_conf"]
            if change.live is not None and change.live.body.get("destination_conf") == conf:
                continue

            def check(client: Any, conf: str = conf) -> Any:
                return client.logpush.validate.destination(account_id=account, destination_conf=conf)

            answer = self.api.call("validate Logpush destination", check)
            result = _plain(answer) if answer is not None else {}
            if not result.get("valid"):
                problems.append((change, f"destination rejected: {result.get('message') or 'no reason given'}"))
        return problems

    def apply_change(self, change: Change) -> None:
        account = self.api.account_id
        if change.action is Action.CREATE:
            assert change.desired is not None
            self._create(change.desired)
        elif change.action is Action.UPDATE:
            assert change.desired is not None
            assert change.live is not None
            if change.live.body.get("dataset") != change.desired.body["dataset"]:
                # The dataset cannot change: replace the job.
                self._delete(change.live)
                self._create(change.desired)
                return
            body = {k: v for k, v in change.desired.body.items() if k != "dataset"}
            job_id = int(str(change.live_id))
            self.api.call("update Logpush job", lambda c: c.logpush.jobs.update(job_id, account_id=account, **body))
        elif change.action is Action.DELETE:
            assert change.live is not None
            self._delete(change.live)

    def _create(self, desired: Resource) -> None:
        account = self.api.account_id
        body = dict(desired.body)

        def create(client: Any) -> Resource:
            job = _plain(client.logpush.jobs.create(account_id=account, **body))
            return Resource(LOGPUSH_JOB, desired.key, job, live_id=str(job.get("id")))

        def recover() -> Resource | None:
            return next((r for r in self.fetch() if r.key == desired.key), None)

        def settle(kept: Resource) -> None:
            # A second job for one name would ship every event twice.
            for extra in self.api.late_duplicates(kept, lambda: [r for r in self.fetch() if r.key == desired.key]):
                self._delete(extra)

        self.api.call("create Logpush job", create, recover=recover, settle=settle)

    def _delete(self, live: Resource) -> None:
        account = self.api.account_id
        job_id = int(str(live.live_id))
        try:
            self.api.call("delete Logpush job", lambda c: c.logpush.jobs.delete(job_id, account_id=account))
        except ApiError as exc:
            if exc.status != 404:  # already gone: an earlier attempt's answer was lost
                raise
