"""Pydantic models of one spec file (``monitors/*.yaml``). Pure: no I/O, no cross-file checks.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
``extalerts schema`` prints the JSON Schema generated from these models for editors.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

SPEC_VERSION = 1

# --------------------------------------------------------------------------------------------- types

_DURATION = re.compile(r"^(0|[1-9][0-9]*)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_ms(text: str) -> int | None:
    """An ISO 8601 time in epoch ms, None when it is not one. A time without a zone is UTC, so the
    same text means the same instant on every machine."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_duration(value: Any) -> int:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"1d"`` → seconds."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('a duration is text such as "30s", "5m", "1h" or "1d"')
    match = _DURATION.match(value.strip())
    if match is None:
        raise ValueError(f'"{value}" is not a duration; write e.g. "30s", "5m", "1h" or "1d"')
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: int) -> str:
    """The shortest exact spelling: 3600 → "1h", 90 → "90s"."""
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _positive(seconds: int) -> int:
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _whole_minutes_up_to_two_days(seconds: int) -> int:
    if seconds % 60 or not 60 <= seconds <= 2 * 86400:
        raise ValueError("must be whole minutes, from 1m to 2d (Datadog's limit for log monitors)")
    return seconds


#: A duration that may be zero, held as whole seconds; written in YAML as "0s", "30s", "5m", "1h", "1d".
DelayDuration = Annotated[
    int,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["0s", "5m"]}),
]
#: A positive duration, held as whole seconds.
Duration = Annotated[DelayDuration, AfterValidator(_positive)]

RuleId = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$",
        max_length=64,
        description="Stable identifier: lower-case words joined by hyphens. Never reuse or rename.",
    ),
]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Tag = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_./-]*(?::[A-Za-z0-9_./-]+)?$", max_length=200, description="key:value"),
]
Url = Annotated[str, Field(pattern=r"^https?://\S+$", description="An http(s) URL")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
FieldName = Annotated[str, Field(description="A Workers Trace Events field or a derived field")]
FilterText = Annotated[
    str,
    Field(
        description='Filter expression, e.g. Outcome != "ok" or Event.Response.Status >= 500',
        min_length=1,
    ),
]


#: Longest lists a rule takes (a monitor groups by a few fields and notifies a few targets).
MAX_GROUP_BY = 4
MAX_NOTIFY = 20
MAX_TAGS = 50


class Model(BaseModel):
    # No NaN or infinity (YAML's .nan, .inf, or 1e400): no provider takes them as a threshold.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------- enums


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def datadog_priority(self) -> int:
        return list(Severity).index(self) + 1

    @property
    def splunk_severity(self) -> int:
        # Splunk: 1 debug, 2 info, 3 warn, 4 error, 5 severe, 6 fatal.
        return {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 2}[self.value]


class Level(StrEnum):
    """A notification level, used to route targets."""

    ALERT = "alert"
    WARNING = "warning"
    RECOVERY = "recovery"


class Aggregation(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    MEDIAN = "median"
    P75 = "p75"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"

    @property
    def percentile(self) -> int | None:
        if self is Aggregation.MEDIAN:
            return 50
        return int(self.value[1:]) if self.value.startswith("p") else None


class DerivedType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"


# --------------------------------------------------------------------------------------------- parts


class Defaults(Model):
    """Values every rule inherits unless it sets its own."""

    service: Name | None = Field(None, description="Service name; becomes the service: tag")
    env: Name | None = Field(None, description="Environment; becomes the env: tag")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description="Tags added to every rule")
    evaluation_delay: DelayDuration | None = Field(
        None,
        description="How long to wait for late logs before evaluating a window. Logpush delivers in "
        "30-300 s batches, so the built-in default is 5m.",
    )
    source: Name | None = Field(None, description="Name of the source rules read by default")
    renotify: Duration | None = Field(None, description="Default re-notification interval")
    splunk_app: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)] | None = Field(
        None, description="Name of the rendered Splunk app (default extalerts_workers)"
    )


class SlackTarget(Model):
    channel: Annotated[str, Field(pattern=r"^#?[a-z0-9][a-z0-9._-]*$", max_length=80)] = Field(
        description="Channel name, with or without #"
    )
    workspace: Name = Field(description="Datadog Slack integration account name")


#: The name of an environment variable (never its value): where a secret is read from at push time.
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=128)]


class PagerDutyTarget(Model):
    service: Name = Field(description="PagerDuty service name as configured in the Datadog integration")
    integration_key_env: EnvName | None = Field(
        None,
        description="Splunk: the environment variable holding this service's Events API integration key. "
        "`push --provider splunk` reads it and sends it as the alert's integration_key_override; the key is "
        "never written to a file. Required when a rule pages this target from Splunk.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_the_spec(cls, data: Any) -> Any:
        # The integration URL holds the key; it must not sit in YAML, rendered files or the app.
        if isinstance(data, dict) and "splunk_integration_url" in data:
            raise ValueError(
                "splunk_integration_url puts the integration key in the spec; export the key in a variable "
                "and name the variable in integration_key_env"
            )
        return data


class EmailTarget(Model):
    to: list[Email] = Field(min_length=1, description="Recipients")


class WebhookTarget(Model):
    name: Name = Field(description="Datadog webhook integration name")
    url: Url = Field(description="Endpoint Splunk's webhook action posts to (must be allow-listed in Splunk)")


class Target(Model):
    """A notification destination. Exactly one kind is set."""

    description: str = ""
    levels: list[Level] = Field(
        default_factory=lambda: list(Level),
        description="Which notifications reach this target (alert, warning, recovery); default all",
    )
    slack: SlackTarget | None = None
    pagerduty: PagerDutyTarget | None = None
    email: EmailTarget | None = None
    webhook: WebhookTarget | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Target:
        kinds = [k for k in ("slack", "pagerduty", "email", "webhook") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a target sets exactly one of slack, pagerduty, email, webhook")
        if not self.levels:
            raise ValueError("levels cannot be empty; remove the target from rules instead")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("slack", "pagerduty", "email", "webhook") if getattr(self, k) is not None)


class DatadogSource(Model):
    index: str = Field("*", description='Log index ("*" = all indexes)')
    query: str = Field("source:cloudflare", description="Datadog search selecting Workers Trace Events")


class SplunkSource(Model):
    index: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")] = "cloudflare"
    sourcetype: Annotated[str, Field(pattern=r"^[A-Za-z0-9_:.-]+$")] = "cloudflare:workers"


class CloudflareSource(Model):
    """Workers Logs, the dataset Workers Observability alerts read (Option A recipes)."""

    # cloudflare-docs workers/observability/logs/workers-logs.mdx ("Head-based sampling"): "The valid
    # range is from 0 to 1 [...] If `head_sampling_rate` is unspecified, it is configured to a default
    # value of 1 (100%)". Zero logs nothing, so no alert could read it.
    head_sampling_rate: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0,
        description="The Workers' observability head_sampling_rate (wrangler config); recipes scale count "
        "thresholds by it, or say they cannot",
    )


class Source(Model):
    """Where Workers Trace Events are found in each provider."""

    description: str = ""
    datadog: DatadogSource = Field(default_factory=DatadogSource)
    splunk: SplunkSource = Field(default_factory=SplunkSource)
    cloudflare: CloudflareSource = Field(default_factory=CloudflareSource)


class DerivedField(Model):
    """A field read from the Worker's structured JSON log line in ``Logs[].Message``."""

    key: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        description="Key in the JSON object the Worker logs"
    )
    type: DerivedType
    description: str = ""


# --------------------------------------------------------------------------------------------- signals


class CountSignal(Model):
    """Number of matching events in the window."""

    kind: Literal["count"]


class RatioSignal(Model):
    """Matching events as a percentage of the rule's filtered events.

    value = 100 * count(filter and match) / count(filter)
    """

    kind: Literal["ratio"]
    match: FilterText = Field(description="Which of the filtered events count as bad")
    min_events: int = Field(
        0,
        ge=0,
        description="Do not evaluate when fewer events than this are in the window (avoids 1/1 = 100%)",
    )


class MeasureSignal(Model):
    """An aggregate of a numeric field."""

    kind: Literal["measure"]
    field: FieldName
    aggregation: Aggregation


class CardinalitySignal(Model):
    """Number of distinct values of a field."""

    kind: Literal["cardinality"]
    field: FieldName


class ChangeSignal(Model):
    """Percent change of the event count against the same window ``compare_to`` earlier."""

    kind: Literal["change"]
    compare_to: Duration = Field(description="How far back the baseline window is: 5m 10m 15m 30m 1h 2h 4h 1d")

    @model_validator(mode="after")
    def _supported_shift(self) -> ChangeSignal:
        if self.compare_to not in CHANGE_SHIFTS:
            allowed = ", ".join(CHANGE_SHIFTS.values())
            raise ValueError(f"compare_to must be one of {allowed} (what Datadog change monitors support)")
        return self


#: Datadog change monitors' timeshifts, seconds → spelling.
CHANGE_SHIFTS = {
    300: "5m",
    600: "10m",
    900: "15m",
    1800: "30m",
    3600: "1h",
    7200: "2h",
    14400: "4h",
    86400: "1d",
}


class AbsenceSignal(Model):
    """No matching event for the whole window (a heartbeat); per group when ``group_by`` is set."""

    kind: Literal["absence"]
    lookback: Duration = Field(
        86400,
        description="How far back Splunk looks for groups that used to send events (default 1d)",
    )
    expected: list[str] = Field(
        default_factory=list,
        description="Group values that must always be present, even if silent for longer than lookback",
    )


Signal = Annotated[
    CountSignal | RatioSignal | MeasureSignal | CardinalitySignal | ChangeSignal | AbsenceSignal,
    Field(discriminator="kind"),
]


def breaches(operator: str, value: float, threshold: float) -> bool:
    """Whether ``value`` is past ``threshold`` by a rule's ``thresholds.operator``."""
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[
        operator
    ]


class Thresholds(Model):
    """When the signal's value alerts. Recovery values add hysteresis."""

    operator: Literal[">", ">=", "<", "<="] = Field(">", description="How the value is compared")
    critical: float
    critical_recovery: float | None = None
    warning: float | None = None
    warning_recovery: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        above = self.operator in (">", ">=")

        def less_severe(a: float, b: float) -> bool:
            return a < b if above else a > b

        word = "below" if above else "above"
        if self.warning is not None and not less_severe(self.warning, self.critical):
            raise ValueError(f"warning ({_num(self.warning)}) must be {word} critical ({_num(self.critical)})")
        if self.critical_recovery is not None and not less_severe(self.critical_recovery, self.critical):
            raise ValueError(
                f"critical_recovery ({_num(self.critical_recovery)}) must be {word} critical "
                f"({_num(self.critical)}) for operator {self.operator}"
            )
        if self.warning_recovery is not None:
            if self.warning is None:
                raise ValueError("warning_recovery needs a warning threshold")
            if not less_severe(self.warning_recovery, self.warning):
                raise ValueError(
                    f"warning_recovery ({_num(self.warning_recovery)}) must be {word} warning "
                    f"({_num(self.warning)}) for operator {self.operator}"
                )
        return self


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class DatadogOverride(Model):
    """Escape hatch: merged into the rendered Datadog monitor. Checked like everything else."""

    options: dict[str, Any] = Field(default_factory=dict, description="Merged into the monitor's options")
    priority: int | None = Field(None, ge=1, le=5)


class SplunkOverride(Model):
    """Escape hatch: ``savedsearches.conf`` keys set on the rendered alert, checked against the documented keys."""

    settings: dict[str, str | int | bool] = Field(default_factory=dict)


class Overrides(Model):
    datadog: DatadogOverride = Field(default_factory=DatadogOverride)
    splunk: SplunkOverride = Field(default_factory=SplunkOverride)


class Rule(Model):
    """One alert, written once and rendered for every provider."""

    id: RuleId
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    severity: Severity
    runbook: Url | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    source: Name | None = Field(None, description="Source to read (default: defaults.source)")
    filter: FilterText | None = Field(None, description="Which events the rule looks at; omit for all")
    signal: Signal
    window: Annotated[Duration, AfterValidator(_whole_minutes_up_to_two_days)] = Field(
        description="Evaluation window, whole minutes, from 1m to 2d"
    )
    group_by: list[FieldName] = Field(default_factory=list, max_length=MAX_GROUP_BY)
    thresholds: Thresholds | None = Field(None, description="Required except for absence rules")
    evaluation_delay: DelayDuration | None = None
    notify: list[Name] = Field(default_factory=list, max_length=MAX_NOTIFY, description="Names of targets")
    renotify: Duration | None = Field(None, description="Repeat the notification this often while firing")
    throttle: Duration | None = Field(
        None, description="Splunk: suppress repeats for this long (default: renotify, else 1h)"
    )
    overrides: Overrides = Field(default_factory=Overrides)


# --------------------------------------------------------------------------------------------- logpush

#: The ``workers_trace_events`` fields a Logpush job can ship (top-level keys, as Cloudflare spells them).
LOGPUSH_FIELDS = (
    "CPUTimeMs",
    "DispatchNamespace",
    "Entrypoint",
    "Event",
    "EventTimestampMs",
    "EventType",
    "Exceptions",
    "Logs",
    "Outcome",
    "ScriptName",
    "ScriptTags",
    "ScriptVersion",
    "WallTimeMs",
)
DATADOG_SITES = (
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
)


class DatadogLogpush(Model):
    """Ship to Datadog's logs intake. The API key comes from DD_API_KEY when the job is pushed."""

    site: Literal[DATADOG_SITES] = "datadoghq.com"  # type: ignore[valid-type]
    service: Name | None = Field(None, description="The service tag of the shipped logs")
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    tags: list[Tag] = Field(default_factory=list, description="ddtags added to the shipped logs")


class SplunkLogpush(Model):
    """Ship to a Splunk HEC raw endpoint. The HEC token comes from SPLUNK_HEC_TOKEN when the job is pushed."""

    endpoint: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+:[0-9]+$")] = Field(
        description="HEC host:port, e.g. http-inputs-acme.splunkcloud.com:443"
    )
    channel: Annotated[
        str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
    ] = Field(description="A random GUID identifying this job's HEC channel")
    sourcetype: Annotated[str, Field(pattern=r"^[A-Za-z0-9_:.-]+$")] = "cloudflare:workers"
    insecure_skip_verify: bool = False


class LogpushJob(Model):
    """A Logpush job shipping workers_trace_events to one provider."""

    description: str = ""
    datadog: DatadogLogpush | None = None
    splunk: SplunkLogpush | None = None
    fields: list[str] | None = Field(None, description="Fields to ship (default: all); EventTimestampMs is required")
    filter: FilterText | None = Field(None, description="Which events to ship, in the rule filter language")
    sample_rate: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_upload_interval: Duration | None = Field(None, description="30s to 5m; Logpush's default is 30s")
    enabled: bool = True

    @model_validator(mode="after")
    def _one_destination(self) -> LogpushJob:
        if (self.datadog is None) == (self.splunk is None):
            raise ValueError("a Logpush job ships to exactly one of datadog, splunk")
        if self.max_upload_interval is not None and not 30 <= self.max_upload_interval <= 300:
            raise ValueError("max_upload_interval is from 30s to 5m")
        return self

    @property
    def provider(self) -> str:
        return "datadog" if self.datadog is not None else "splunk"

    @property
    def shipped_fields(self) -> tuple[str, ...]:
        return tuple(self.fields) if self.fields is not None else LOGPUSH_FIELDS


class Logpush(Model):
    """The Logpush jobs that feed the providers, and the Worker scripts that must have Logpush on."""

    scripts: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]] = Field(
        default_factory=list, description="Worker scripts whose logs must ship (doctor checks logpush = true)"
    )
    jobs: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=40)], LogpushJob] = Field(
        default_factory=dict, description="Jobs by name; the live job is named extalerts-<name>"
    )


class SpecFile(Model):
    """One file under ``monitors/``. Sections from all files are merged; names must be unique."""

    version: Literal[1] = Field(description="Spec format version")
    defaults: Defaults | None = None
    sources: dict[Name, Source] = Field(default_factory=dict)
    targets: dict[Name, Target] = Field(default_factory=dict)
    fields: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], DerivedField] = Field(
        default_factory=dict, description="Derived fields read from the Worker's structured log line"
    )
    rules: list[Rule] = Field(default_factory=list)
    logpush: Logpush | None = Field(None, description="Logpush jobs shipping Workers Trace Events (once)")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file, for yaml-language-server and other editors."""
    schema = SpecFile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "extalerts spec file (version 1)"
    return schema
