"""The local evaluation engine: what each rule would have done over a stream of Workers Trace Events.

Semantics follow Datadog monitors by default (``semantics="datadog"``): every minute, on the minute,
each rule evaluates the window ``[T - delay - window, T - delay)``; one state per group; a group that
was seen counts 0 events in a window where it sent none, and a rule without groups is judged from the
input's first full window, before its own first event; count-like signals treat an empty window as
0, other signals as "no data", which keeps the current state. Alert and warning recover when the value
is back on the quiet side of their recovery threshold (or of the threshold itself without one).
Percentiles interpolate between the two nearest ranks; events lacking a group-by field form the
group ``N/A``.
``semantics="splunk"`` follows the rendered Splunk alerts instead: they run on their cron schedule,
are stateless (no recovery thresholds: each run alerts or not), and warnings are a separate alert
whose search leaves the critical range to the alert search: each run puts a group in one state, so
it notifies once, as critical or as warning, each search throttled on its own. Percentiles take
the nearest rank (limits.conf's ``perc_method``), and events lacking a group-by field are in no
group, as ``stats … BY`` leaves them out.
``semantics="cloudflare"`` runs the rules Option A carries as Workers Observability alerts: checks
every "Check alert every" minutes over their lookback, no evaluation delay, and the alert's states
(:mod:`.observability`); otherwise as Datadog's.

Data path: one parallel DuckDB scan per input file (plain or gzip, local or through fsspec) reads
only the fields the rules use, typed to the shapes Logpush writes, and aggregates them straight away:
per minute bucket and per group, each rule's counts, sums, minima and maxima, and for percentiles and
distinct counts the bucket's values with their counts. No table of events is kept, so memory holds
only those aggregates however large the input. An input the typed columns cannot hold exactly (a
lowercase key, a message that is a single string) is read again the exact way, through JSON. The
windows, the thresholds and the state machines then run in Python over the small aggregates.

The package follows that path: :mod:`.sources` (files, folders, globs, ``s3://``; opened plain or
gzip), :mod:`.salvage` (what is sound of a damaged archive or of a file with over-long lines),
:mod:`.staging` (the plan: how events are read into columns and aggregated per file),
:mod:`.scan` (a batch of files into its partial aggregates; bad lines located again line by line
by :mod:`.lines`), :mod:`.merge` (the partials combined per rule and group; time outliers set aside),
:mod:`.windows` (values per evaluation window), :mod:`.states` (the state machines),
:mod:`.notifications`, and :mod:`.core`, the :class:`Engine` that runs them in turn. Each batch
of files is a map step of its own (:func:`.scan.scan_batch`), run here, in local processes or on a
Dask cluster by :mod:`.parallel`; the merge gives the same answer for any split of the input.
"""

from extalerts.engine.core import Engine, replay
from extalerts.engine.results import (
    MINUTE_MS,
    MISSING_GROUP_VALUE,
    BadLine,
    EngineError,
    EngineResult,
    Group,
    Interval,
    RuleResult,
    Semantics,
    State,
    Transition,
)
from extalerts.engine.salvage import GzipDamage, gzip_damage
from extalerts.engine.sources import EVENT_FILE_SUFFIXES, MAX_LINE_BYTES, expand_sources, open_source, write_events
from extalerts.engine.states import transitions
from extalerts.engine.windows import bucketed_values, ceil_minute, evaluation_window_ms, schedule_minutes

__all__ = [
    "EVENT_FILE_SUFFIXES",
    "MAX_LINE_BYTES",
    "MINUTE_MS",
    "MISSING_GROUP_VALUE",
    "BadLine",
    "Engine",
    "EngineError",
    "EngineResult",
    "Group",
    "GzipDamage",
    "Interval",
    "RuleResult",
    "Semantics",
    "State",
    "Transition",
    "bucketed_values",
    "ceil_minute",
    "evaluation_window_ms",
    "expand_sources",
    "gzip_damage",
    "open_source",
    "replay",
    "schedule_minutes",
    "transitions",
    "write_events",
]
