"""The field catalog: what a rule can filter, group and aggregate on.

Built-in fields are the ``workers_trace_events`` Logpush fields, spelled exactly as Cloudflare writes
them (PascalCase). Derived fields come from the spec's ``fields`` section: they are read from the
structured JSON line a Worker logs with ``console.log`` (see the README's "Structured log line" and
:data:`STRUCTURED_LINE_LEVEL`).

Each field knows how every backend reads it, so the filter compilers never guess a path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    #: An array of strings; a predicate holds when it holds for any element.
    STRING_LIST = "string list"

    @property
    def is_numeric(self) -> bool:
        return self in (FieldType.INTEGER, FieldType.NUMBER)


#: One step of a JSON path; ``"[]"`` means "every element of this array".
PathStep = str
ARRAY = "[]"


@dataclass(frozen=True)
class Field:
    """A field as every backend sees it."""

    name: str
    type: FieldType
    description: str
    #: JSON paths into the event; several when Cloudflare's key casing varies between sources.
    paths: tuple[tuple[PathStep, ...], ...]
    #: Safe identifier used for the field in SPL (``[A-Za-z_][A-Za-z0-9_]*``).
    splunk_name: str
    #: Logpush job filters accept this field (scalars and string arrays only).
    logpush: bool = False
    #: Key in the structured log line, for derived fields.
    derived_key: str | None = None
    #: Values Cloudflare documents, used for hints only: the field stays an open string.
    known_values: tuple[str, ...] = ()

    @property
    def is_derived(self) -> bool:
        return self.derived_key is not None

    def datadog_attributes(self) -> tuple[str, ...]:
        """Datadog attribute paths (without ``@``): arrays are flattened with dots in Datadog search."""
        if self.derived_key is not None:
            return (f"{DERIVED_DATADOG_ROOT}.{self.derived_key}",)
        return tuple(".".join(step for step in path if step != ARRAY) for path in self.paths)

    def splunk_paths(self) -> tuple[str, ...]:
        """``spath`` paths: arrays are written ``name{}``."""
        out: list[str] = []
        for path in self.paths:
            parts: list[str] = []
            for step in path:
                if step == ARRAY:
                    parts[-1] += "{}"
                else:
                    parts.append(step)
            out.append(".".join(parts))
        return tuple(out)


#: Datadog attribute under which the managed pipeline puts the structured log line's keys.
DERIVED_DATADOG_ROOT = "extalerts"

# The structured log line, defined once for every provider and the engine (README, "Structured log
# line"): the ``Message`` of the first ``Logs`` entry whose ``Level`` is exactly ``log``, its strings
# joined with ``,``, read when it is a JSON object of at most 256 characters. Datadog's pipeline
# reads it this way (an array select, then a string builder whose result "cannot exceed 256
# characters", then grok), so no backend may read more than Datadog can.
STRUCTURED_LINE_LEVEL = "log"
STRUCTURED_LINE_SEPARATOR = ","
STRUCTURED_LINE_MAX_CHARS = 256


def _f(
    name: str,
    type_: FieldType,
    description: str,
    *paths: tuple[str, ...],
    splunk: str | None = None,
    logpush: bool = False,
    known: tuple[str, ...] = (),
) -> Field:
    return Field(
        name=name,
        type=type_,
        description=description,
        paths=paths or (tuple(name.split(".")),),
        splunk_name=splunk or name.replace(".", "_"),
        logpush=logpush,
        known_values=known,
    )


_S, _I, _L = FieldType.STRING, FieldType.INTEGER, FieldType.STRING_LIST

#: ``workers_trace_events`` fields (Cloudflare Logpush dataset reference).
WORKERS_TRACE_EVENT_FIELDS: tuple[Field, ...] = (
    _f("CPUTimeMs", _I, "CPU time used by the invocation, in milliseconds", logpush=True),
    _f("WallTimeMs", _I, "Wall time the JS context stayed open, including waitUntil work, ms", logpush=True),
    _f("EventTimestampMs", _I, "When the event was received, epoch milliseconds", logpush=True),
    _f("DispatchNamespace", _S, "Workers for Platforms dispatch namespace", logpush=True),
    _f("Entrypoint", _S, "Entrypoint class the invocation began in (a Durable Object class)", logpush=True),
    _f(
        "EventType",
        _S,
        "What triggered the invocation",
        logpush=True,
        known=("fetch", "scheduled", "alarm", "queue", "email", "worker_rpc", "hibernatable_web_socket"),
    ),
    _f(
        "Outcome",
        _S,
        "How the invocation ended; the runtime's list (workerd outcome.capnp) may grow",
        logpush=True,
        known=(
            "ok",
            "exception",
            "exceededCpu",
            "exceededMemory",
            "canceled",
            "responseStreamDisconnected",
            "loadShed",
            "killSwitch",
            "scriptNotFound",
            "daemonDown",
            "unknown",
        ),
    ),
    _f("ScriptName", _S, "Worker script name", logpush=True),
    _f("ScriptTags", _L, "Tags of the Worker script", ("ScriptTags", ARRAY), logpush=True),
    _f("ScriptVersion.ID", _S, "Version id of the script that ran"),
    _f("ScriptVersion.Tag", _S, "Version tag of the script that ran"),
    _f("ScriptVersion.Message", _S, "Version message of the script that ran"),
    _f("Event.RayID", _S, "Ray ID of the request (fetch events)", splunk="ray_id"),
    _f("Event.Request.URL", _S, "Request URL (fetch events)", splunk="url"),
    _f("Event.Request.Method", _S, "Request method (fetch events)", splunk="method"),
    _f("Event.Response.Status", _I, "Response status code (fetch events)", splunk="status"),
    _f(
        "Logs.Message",
        _L,
        "console.* messages of the invocation (text, searched with contains)",
        ("Logs", ARRAY, "Message", ARRAY),
        ("Logs", ARRAY, "message", ARRAY),
        splunk="log_message",
    ),
    _f(
        "Logs.Level",
        _L,
        "Levels of the invocation's console.* messages",
        ("Logs", ARRAY, "Level"),
        ("Logs", ARRAY, "level"),
        splunk="log_level",
    ),
    _f(
        "Exceptions.Name",
        _L,
        "Names of uncaught exceptions",
        ("Exceptions", ARRAY, "Name"),
        ("Exceptions", ARRAY, "name"),
        splunk="exception_name",
    ),
    _f(
        "Exceptions.Message",
        _L,
        "Messages of uncaught exceptions",
        ("Exceptions", ARRAY, "Message"),
        ("Exceptions", ARRAY, "message"),
        splunk="exception_message",
    ),
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def derived_field(name: str, key: str, type_: FieldType, description: str) -> Field:
    """A field read from the structured log line (``Logs[].Message``)."""
    return Field(
        name=name,
        type=type_,
        description=description,
        paths=((key,),),
        splunk_name=name,
        derived_key=key,
    )


class FieldCatalog(Mapping[str, Field]):
    """Built-in plus derived fields, looked up by name, with "did you mean" suggestions."""

    def __init__(self, derived: Iterable[Field] = ()) -> None:
        self._fields: dict[str, Field] = {f.name: f for f in WORKERS_TRACE_EVENT_FIELDS}
        for field in derived:
            self._fields[field.name] = field

    def __getitem__(self, name: str) -> Field:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def suggest(self, name: str) -> str:
        """A hint naming the closest known field, or listing them when nothing is close."""
        close = difflib.get_close_matches(name, list(self._fields), n=1, cutoff=0.6)
        if not close:
            lowered = {n.lower(): n for n in self._fields}
            if name.lower() in lowered:
                close = [lowered[name.lower()]]
        if close:
            return f"did you mean `{close[0]}`? field names are case-sensitive"
        return "known fields: " + ", ".join(sorted(self._fields))

    @property
    def derived(self) -> tuple[Field, ...]:
        return tuple(f for f in self._fields.values() if f.is_derived)


def is_identifier(name: str) -> bool:
    return bool(_IDENTIFIER.match(name))
