"""A local Datadog emulator that evaluates what was pushed.

The HTTP routes are in :mod:`.api`; the provider semantics each have their own module beside them,
every rule of behaviour citing the documentation sentence it follows:

* :mod:`.pipelines` — log processing at intake (date remapper, array, string builder, grok, …);
* :mod:`.search` — the log search syntax, with :mod:`.facets` deciding numeric ranges and measures;
* :mod:`.monitors` — the monitor query grammars and their evaluation (log alerts, formulas,
  metric change alerts on log-based metrics), with group states;
* :mod:`.aggregate` and :mod:`.events` — the Logs Aggregate and Logs Search APIs over the stored logs.
"""

from extalerts.emulators.datadog.api import (
    INTAKE_MAX_BYTES,
    INTAKE_MAX_LOGS,
    MONITOR_TYPES,
    SERVER_OPTION_DEFAULTS,
    STATE_ORDER,
    DatadogEmulator,
)

__all__ = [
    "INTAKE_MAX_BYTES",
    "INTAKE_MAX_LOGS",
    "MONITOR_TYPES",
    "SERVER_OPTION_DEFAULTS",
    "STATE_ORDER",
    "DatadogEmulator",
]
