"""The engine: the scan into partials, the merge, windows, state machines and notifications, in one object."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict, Unpack

from extalerts import observability_timings
from extalerts.engine import observability
from extalerts.engine.notifications import notifications
from extalerts.engine.parallel import Batch, run_map_steps
from extalerts.engine.results import (
    EngineError,
    EngineResult,
    RuleResult,
    Semantics,
    State,
)
from extalerts.engine.scan import Partial, Scan, ScanJob
from extalerts.engine.sources import _size, expand_sources, write_events
from extalerts.engine.states import transitions
from extalerts.engine.windows import Windows
from extalerts.errors import Location
from extalerts.filter.ast import Expr
from extalerts.spec.loader import ResolvedRule, Spec


class LoadOptions(TypedDict, total=False):
    """How :meth:`Engine.load` and :meth:`Engine.load_files` read; every key may be left out."""

    #: The first file holding a bad line is an error (default: bad lines are counted and reported).
    strict: bool
    #: Hears each file once it is read.
    on_file: Callable[[str], None] | None
    #: Hears the share of the input read so far, 0 to 1.
    on_progress: Callable[[float], None] | None
    #: Local processes to read over (default: this one).
    workers: int | None
    #: The Dask cluster to read on (``tcp://host:8786``).
    scheduler: str | None


def _refuse_unknown(options: LoadOptions) -> None:
    """A keyword :class:`LoadOptions` does not name is a TypeError, as for any signature (a script
    unchecked by mypy would otherwise lose a misspelt option unseen)."""
    if unknown := sorted(options.keys() - LoadOptions.__optional_keys__):
        raise TypeError(f"unexpected keyword argument {', '.join(map(repr, unknown))}")


class Engine(Scan, Windows):
    """Load events once, then evaluate any rules of the spec over them."""

    def load(self, sources: Sequence[str], **options: Unpack[LoadOptions]) -> None:
        """Read every source. Bad lines are counted and reported by file and line; with ``strict``
        the first file holding one is an error. ``on_progress`` hears the share of the input read so
        far (0 to 1; by bytes, or by files for ``s3://``), several times a second, within large files too.

        Files are read in batches, one query each: DuckDB reads a batch's files in parallel, which
        matters for Logpush archives of many small gzip files (each one is a single stream). Each
        batch is a map step of its own (see :mod:`extalerts.engine.parallel`): in this process, over
        ``workers`` local processes, or on the Dask cluster at ``scheduler`` (``tcp://host:8786``);
        the partial aggregates merge to the same answer however the files were split."""
        _refuse_unknown(options)  # before listing any source, as a signature would
        self.load_files(expand_sources(sources), **options)

    def load_files(self, files: Sequence[str], **options: Unpack[LoadOptions]) -> None:
        """As :meth:`load`, for files already expanded by :func:`expand_sources` (listing an
        ``s3://`` prefix again would cost a request per object)."""
        _refuse_unknown(options)
        local = not any(f.startswith("s3://") for f in files)
        sizes = [_size(file) if local else 1 for file in files]
        self._read(list(zip(files, sizes, strict=True)), options)
        self._set_aside_time_outliers()

    def load_events(self, events: Iterable[Mapping[str, Any]], *, strict: bool = True) -> None:
        """Evaluate over events given as dicts (written to a temporary NDJSON file and read like any other)."""
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "events.ndjson"
            write_events(events, path)
            self._read([(str(path), 1)], {"strict": strict})

    def _read(self, files: list[tuple[str, int]], options: LoadOptions) -> None:
        """The map step over every batch of ``files`` (with their sizes), each partial merged as it comes."""
        import threading

        strict, on_file, on_progress = options.get("strict", False), options.get("on_file"), options.get("on_progress")

        total, done, reported = max(sum(size for _, size in files), 1), 0, 0.0
        lock = threading.Lock()  # heard from the watching thread and from this one

        def report(share: float) -> None:
            nonlocal reported
            with lock:
                if on_progress is not None and share > reported:  # a batch read again restarts its query
                    reported = share
                    on_progress(share)

        def within(batch: Batch, query_share: float) -> None:
            report((done + query_share * batch.size) / total)

        partials: list[Partial] = []
        steps = run_map_steps(
            self._scan_job(strict),
            files,
            workers=options.get("workers"),
            scheduler=options.get("scheduler"),
            on_progress=within if on_progress is not None else None,
        )
        for batch, partial in steps:
            self._merge_aggregates(partial)
            partial.aggregates = None  # merged: only what reading found is kept, for the file order
            partials.append(partial)
            done += batch.size
            report(done / total)
            for file in batch.files:
                if on_file is not None:
                    on_file(file)
        self._merge_reports(partials, [file for file, _ in files])

    def _scan_job(self, strict: bool) -> ScanJob:
        """What a map step needs, picklable: the rules without their source locations."""
        rules = tuple(replace(rule, locate=_located_where_loaded) for rule in self.spec.rules)
        return ScanJob(
            spec=replace(self.spec, rules=rules),
            rules=tuple(rule.id for rule in self.rules),
            semantics=self.semantics,
            shipped=self.shipped,
            memory_limit=self.memory_limit,
            threads=self.threads,
            strict=strict,
        )

    def evaluate(self, *, start_ms: int | None = None, end_ms: int | None = None) -> EngineResult:
        """Evaluate every rule. Without ``start_ms``/``end_ms`` the evaluations cover the input: from
        the first full window to the first evaluation whose window ends after the last event."""
        first, last = self.span()
        results: dict[str, RuleResult] = {}
        for rule in self.rules:
            results[rule.id] = self._evaluate_rule(rule, first, last, start_ms, end_ms)
        warnings = [*self.warnings, *self.type_warnings()]
        cloudflare = self.semantics == "cloudflare"
        timings = {r.id: observability_timings.timings_for(r) for r in self.rules} if cloudflare else {}
        return EngineResult(
            results,
            self.events,
            self.bad_lines,
            self.bad_line_count,
            first,
            last,
            self.semantics,
            warnings,
            dict(self.not_carried),
            timings,
        )

    def _evaluate_rule(
        self, rule: ResolvedRule, first: int | None, last: int | None, start_ms: int | None, end_ms: int | None
    ) -> RuleResult:
        times = self._evaluation_times(rule, first, last, start_ms, end_ms)
        result = RuleResult(rule.id, evaluations=len(times), until_ms=times[-1] if times else None)
        if not times:
            return result
        values = self._values(rule, times)
        if self.semantics == "cloudflare":
            observability.run_alert(rule, result, values)
            return result
        result.series = {group: values[group] for group in sorted(values)}
        result.transitions = transitions(rule, result.series, self.semantics)
        result.notifications = notifications(rule, result, self.semantics)
        if self.semantics == "splunk":
            result.warning_notifications = notifications(rule, result, self.semantics, State.WARN)
        return result


def replay(
    spec: Spec,
    sources: Sequence[str],
    *,
    rules: Sequence[str] | None = None,
    semantics: Semantics = "datadog",
    strict: bool = False,
    memory_limit: str = "1GB",
    shipped: Expr | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> EngineResult:
    """What ``extalerts replay`` evaluates, for scripts: the same options (``workers`` local
    processes, or the Dask ``scheduler`` address), the same answer. Local workers are spawned
    processes, which import the script again: call this under ``if __name__ == "__main__":``."""
    engine = Engine(spec, rules=rules, semantics=semantics, memory_limit=memory_limit, shipped=shipped)
    engine.load(sources, strict=strict, workers=workers, scheduler=scheduler)
    return engine.evaluate(start_ms=start_ms, end_ms=end_ms)


def _located_where_loaded() -> Location:
    """A map step's rules carry no source location (its lookup cannot travel to another process)."""
    raise EngineError("a rule's location in the spec is known where the spec was loaded")
