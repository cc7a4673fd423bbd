"""Sending Workers Trace Events through a provider's own intake, the way Logpush delivers them.

* Datadog: the logs intake (``POST /api/v2/logs`` on ``http-intake.logs.<site>``) through the official
  client, each event a JSON message, with Logpush's ``ddsource``/``service``/``host``/``ddtags``.
* Splunk: HEC ``/services/collector/raw`` with a channel, the path Logpush uses, NDJSON bodies.

Both batch within the documented limits and retry 429/5xx with the shared retry policy.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from extalerts.errors import ApiError, ConfigError
from extalerts.providers.api import AUTH_STATUSES, auth_hint, network_verdict
from extalerts.redact import redact
from extalerts.retry import Retrier, Verdict, classify_status

DATADOG_INTAKE_URL_ENV = "EXTALERTS_DATADOG_INTAKE_URL"
SPLUNK_HEC_URL_ENV = "SPLUNK_HEC_URL"
#: Datadog's documented limits: 1,000 logs and 5 MB a request; kept under with a margin.
DATADOG_BATCH = 1000
BATCH_BYTES = 4 * 1024 * 1024


class Intake(Protocol):
    name: str

    def send(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Deliver the events; returns how many were accepted."""


def _batches(events: Sequence[Mapping[str, Any]], limit: int) -> Iterable[list[str]]:
    batch: list[str] = []
    size = 0
    for event in events:
        line = json.dumps(event, separators=(",", ":"))
        if batch and (len(batch) >= limit or size + len(line) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line) + 1
    if batch:
        yield batch


@dataclass
class DatadogIntake:
    """Logs intake; ``origin`` holds the Logpush job's ddsource/service/hostname/ddtags."""

    api_url: str
    api_key: str = field(repr=False)
    origin: Mapping[str, str] = field(default_factory=dict)
    name: str = "datadog"
    #: Where ``api_url`` came from, for messages.
    url_source: str = DATADOG_INTAKE_URL_ENV

    @classmethod
    def from_env(cls, origin: Mapping[str, str], env: Mapping[str, str] | None = None) -> DatadogIntake:
        from extalerts.providers.datadog import SITES

        environ = os.environ if env is None else env
        key = environ.get("DD_API_KEY")
        if not key:
            raise ConfigError("DD_API_KEY is not set; export it (the logs intake needs the API key)")
        redact(key)
        url, source = environ.get(DATADOG_INTAKE_URL_ENV), DATADOG_INTAKE_URL_ENV
        if not url:
            site = environ.get("DD_SITE") or "datadoghq.com"
            if site not in SITES:
                raise ConfigError(f"DD_SITE={site} is not a Datadog site; or set {DATADOG_INTAKE_URL_ENV}")
            url, source = f"https://http-intake.logs.{site}", f"DD_SITE={site}; {DATADOG_INTAKE_URL_ENV} sets another"
        return cls(url.rstrip("/"), key, origin, url_source=source)

    def __post_init__(self) -> None:
        from extalerts.providers.datadog import DatadogApi, DatadogSettings

        # The intake checks the API key only; the application key slot is never sent to it.
        settings = DatadogSettings(
            api_url=self.api_url,
            api_key=self.api_key,
            app_key="-",
            url_source=self.url_source,
            credentials="DD_API_KEY",
        )
        self._api = DatadogApi(settings)

    def send(self, events: Sequence[Mapping[str, Any]]) -> int:
        from datadog_api_client.v2.api.logs_api import LogsApi
        from datadog_api_client.v2.model.http_log import HTTPLog
        from datadog_api_client.v2.model.http_log_item import HTTPLogItem

        sent = 0
        for batch in _batches(events, DATADOG_BATCH):
            body = HTTPLog([HTTPLogItem(message=line, **self.origin) for line in batch])

            def submit(client: Any, body: Any = body) -> Any:
                return LogsApi(client).submit_log(body=body)

            self._api.call("submit logs", submit)
            sent += len(batch)
        return sent


@dataclass
class SplunkHec:
    """HEC raw endpoint, one channel per sender, like Logpush."""

    url: str
    token: str = field(repr=False)
    index: str | None = None
    sourcetype: str = "cloudflare:workers"
    name: str = "splunk"
    channel: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: Where ``url`` came from, for messages.
    url_source: str = SPLUNK_HEC_URL_ENV
    #: The variable holding the token, for messages.
    credentials: str = "SPLUNK_HEC_TOKEN"
    timeout: float = 30.0

    @classmethod
    def from_env(cls, sourcetype: str, index: str | None = None, env: Mapping[str, str] | None = None) -> SplunkHec:
        environ = os.environ if env is None else env
        url, token = environ.get(SPLUNK_HEC_URL_ENV), environ.get("SPLUNK_HEC_TOKEN")
        if not url or not token:
            raise ConfigError(f"{SPLUNK_HEC_URL_ENV} and SPLUNK_HEC_TOKEN must be set to send events through HEC")
        redact(token)
        return cls(url.rstrip("/"), token, index, sourcetype)

    def __post_init__(self) -> None:
        import urllib3

        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=self.timeout))
        self._retrier = Retrier()

    def send(self, events: Sequence[Mapping[str, Any]]) -> int:
        from urllib.parse import urlencode

        params = {"channel": self.channel, "sourcetype": self.sourcetype}
        if self.index:
            params["index"] = self.index
        target = f"{self.url}/services/collector/raw?{urlencode(params)}"
        headers = {"Authorization": f"Splunk {self.token}", "Content-Type": "text/plain"}
        sent = 0
        for batch in _batches(events, 10_000):
            body = ("\n".join(batch) + "\n").encode()

            def post(body: bytes = body) -> None:
                self._post(target, body, headers)

            self._retrier.call("send events to HEC", post, self._classify)
            sent += len(batch)
        return sent

    def _post(self, target: str, body: bytes, headers: Mapping[str, str]) -> None:
        response = self._http.request("POST", target, body=body, headers=dict(headers))
        if response.status != 200:
            raise _HecError(response.status, _hec_message(response.data))

    def _classify(self, operation: str, exc: Exception) -> Verdict | None:
        import urllib3.exceptions

        if isinstance(exc, _HecError):
            error = ApiError(
                operation, exc.status, [exc.text], hint=auth_hint(self) if exc.status in AUTH_STATUSES else ""
            )
            return Verdict(classify_status(exc.status), lambda attempts: error)
        return network_verdict(operation, exc, self.url, self.url_source, (urllib3.exceptions.HTTPError,))


def _hec_message(data: bytes) -> str:
    """HEC's ``{"text": ..., "code": ...}`` answer as ``text (code)``; anything else as it came, cut short."""
    raw = data.decode("utf-8", "replace")
    try:
        answer = json.loads(raw)
    except ValueError:
        return raw[:200]
    if isinstance(answer, dict) and "text" in answer:
        return f"{answer['text']} ({answer.get('code')})"
    return raw[:200]


class _HecError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HEC answered {status}: {text}")
        self.status = status
        self.text = text


# --------------------------------------------------------------------------------------------- Logpush's view


@dataclass(frozen=True)
class LogpushShape:
    """What a Logpush job does to an event before the provider sees it: its filter and field list."""

    job: str
    origin: dict[str, str]
    sourcetype: str
    keep: Any  # Callable[[event], bool]
    fields: tuple[str, ...] | None

    def apply(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for event in events:
            if not self.keep(event):
                continue
            if self.fields is None:
                out.append(dict(event))
            else:
                out.append({k: v for k, v in event.items() if k in self.fields or k == "EventTimestampMs"})
        return out


def logpush_shape(spec: Any, provider: str) -> LogpushShape:
    """The spec's Logpush job shipping to ``provider`` (datadog or splunk)."""
    from extalerts.filter import parse
    from extalerts.filter.python import to_python

    for name, job in sorted(spec.logpush.jobs.items()):
        destination = job.datadog if provider == "datadog" else job.splunk
        if destination is None or not job.enabled:
            continue
        origin: dict[str, str] = {}
        sourcetype = "cloudflare:workers"
        if provider == "datadog":
            origin = {"ddsource": "cloudflare"}
            if destination.service:
                origin["service"] = destination.service
            if destination.host:
                origin["hostname"] = destination.host
            if destination.tags:
                origin["ddtags"] = ",".join(destination.tags)
        else:
            sourcetype = destination.sourcetype
        keep = to_python(parse(job.filter) if job.filter else None, spec.catalog)
        return LogpushShape(name, origin, sourcetype, keep, tuple(job.fields) if job.fields else None)
    raise ConfigError(f"no enabled Logpush job in the spec ships to {provider}; add one under logpush.jobs")


def read_events(files: Sequence[str]) -> list[dict[str, Any]]:
    """Workers Trace Events from NDJSON sources as ``replay`` reads them (plain, gzip, ``s3://``);
    lines that are not events are skipped."""
    from extalerts.engine import open_source

    events: list[dict[str, Any]] = []
    for file in files:
        with open_source(file) as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and isinstance(event.get("EventTimestampMs"), int):
                    events.append(event)
    return events
