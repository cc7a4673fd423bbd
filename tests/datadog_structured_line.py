"""The structured-line pipeline the design for Datadog renders (a date remapper on EventTimestampMs, the
first ``log`` entry's Message selected, joined by a string builder, parsed by grok as a string), for tests
that need drill or structured-line fields to reach Datadog monitors before the renderer emits it.

``install`` replaces the pushed pipeline of that name in the emulator (or adds it), through the same
route the API uses, so the emulator runs it on every log that arrives afterwards.
"""

from __future__ import annotations

import copy
from typing import Any

from extalerts.emulators.datadog import DatadogEmulator
from extalerts.render.datadog import PIPELINE_NAME


def bundled_filter() -> str:
    """The filter the renderer gives the pipeline for the bundled spec's sources (and drill events)."""
    from extalerts.render.datadog import DatadogRenderer
    from extalerts.render.templates import Templates
    from extalerts.spec import load_spec
    from tests.conftest import MONITORS

    rendered = DatadogRenderer(load_spec([MONITORS]), Templates()).pipeline()
    assert rendered is not None
    return str(rendered["filter"]["query"])


def pipeline(*, grok_source: str = "extalerts_line", query: str | None = None) -> dict[str, Any]:
    return {
        "name": PIPELINE_NAME,
        "is_enabled": True,
        "filter": {"query": query if query is not None else bundled_filter()},
        "processors": [
            {"type": "date-remapper", "name": "time", "is_enabled": True, "sources": ["EventTimestampMs"]},
            {
                "type": "array-processor",
                "name": "first log entry",
                "is_enabled": True,
                "operation": {
                    "type": "select",
                    "source": "Logs",
                    "filter": "Level:log",
                    "value_to_extract": "Message",
                    "target": "extalerts_message",
                },
            },
            {
                "type": "string-builder-processor",
                "name": "line",
                "is_enabled": True,
                "template": "%{extalerts_message}",
                "target": "extalerts_line",
                "is_replace_missing": False,
            },
            {
                "type": "grok-parser",
                "name": "parse",
                "is_enabled": True,
                "source": grok_source,
                "samples": [],
                "grok": {"match_rules": "extalerts_structured_line %{data:extalerts:json}", "support_rules": ""},
            },
        ],
    }


def install(emulator: DatadogEmulator, document: dict[str, Any] | None = None) -> str:
    """Put ``document`` (the design pipeline by default) in place of the pipeline with its name; its id."""
    body = copy.deepcopy(document or pipeline())
    with emulator._lock:
        existing = next((p for p in emulator.state.pipelines.values() if p["name"] == body["name"]), None)
        if existing is None:
            return str(emulator._post_pipeline(query={}, body=body)["id"])
        emulator._put_pipeline(existing["id"], query={}, body=body)
        return str(existing["id"])
