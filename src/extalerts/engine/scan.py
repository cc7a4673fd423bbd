"""The scan, the map step: a batch of input files through the staging query into its partial
aggregates, with nothing shared with any other batch; bad lines located, damaged archives salvaged."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extalerts.engine.lines import _bad_line_numbers
from extalerts.engine.results import BadLine, EngineError, Semantics
from extalerts.engine.salvage import GzipDamage, _copy_without_long_lines, _salvage_gzip, gzip_damage
from extalerts.engine.sources import (
    MAX_LINE_BYTES,
    _s3_filesystem,
    _size,
)
from extalerts.engine.staging import Staging, connect
from extalerts.filter.ast import Expr
from extalerts.filter.duckdb import sql_string
from extalerts.spec.loader import Spec
from extalerts.wording import plural

if TYPE_CHECKING:
    import duckdb

MAX_REPORTED_BAD_LINES = 20


@dataclass(frozen=True)
class ScanJob:
    """What a map step needs to read files in any process (picklable: the spec's rules travel
    without their source locations)."""

    spec: Spec
    rules: tuple[str, ...]
    semantics: Semantics
    shipped: Expr | None
    memory_limit: str
    threads: int | None
    strict: bool


@dataclass
class Partial:
    """A map step's answer for a batch of files: its aggregates, one row per minute bucket and group
    (Parquet), and what reading them found. Nothing in it depends on any other batch."""

    files: list[str]
    aggregates: bytes | None
    events: int
    bad_line_count: int
    bad_lines: list[BadLine]
    warnings: list[str]
    exact_reads: int
    file_spans: dict[str, tuple[int, int]]
    type_mismatches: dict[str, tuple[int, tuple[str, int] | None]]
    #: Input bytes read (0 for s3:// objects, whose sizes are not listed), for progress.
    size: int = 0


def scan_batch(job: ScanJob, files: Sequence[str], on_progress: Callable[[float], None] | None = None) -> Partial:
    """The map step: read ``files`` into their partial aggregates, from no table of any other batch.
    Runs in this process, a local worker process or on a Dask worker alike."""
    db = _scanner_db(job.memory_limit, job.threads)
    scanner = Scan(
        job.spec,
        rules=job.rules,
        semantics=job.semantics,
        memory_limit=job.memory_limit,
        threads=job.threads,
        shipped=job.shipped,
        db=db,
    )
    try:
        scanner._read_batch(files, job.strict, on_progress)
        partial = scanner._partial(files)
    finally:
        db.execute("DROP TABLE IF EXISTS staged; DROP TABLE IF EXISTS partials")
    partial.size = sum(_size(f) for f in files if not f.startswith("s3://"))
    return partial


_scanner_dbs = threading.local()


def _scanner_db(memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB for map steps, opened once (opening one takes tens of milliseconds,
    which `extalerts test` would pay per test); each map step drops its tables when done."""
    key = (memory_limit, threads)
    cached = getattr(_scanner_dbs, "cached", None)
    if cached is None or cached[0] != key:
        if cached is not None:
            cached[1].close()
        _scanner_dbs.cached = (key, connect(memory_limit, threads))
    db: duckdb.DuckDBPyConnection = _scanner_dbs.cached[1]
    db.execute("DROP TABLE IF EXISTS staged; DROP TABLE IF EXISTS partials")  # after a step that failed
    return db


class Scan(Staging):
    """The map step's reading: a batch of input files into this scanner's ``partials``."""

    def _read_batch(
        self, files: Sequence[str], strict: bool, on_progress: Callable[[float], None] | None = None
    ) -> None:
        """Read a batch of files into this scanner's ``partials`` (one query for the sound ones)."""
        if any(f.startswith("s3://") for f in files) and not self.db.filesystem_is_registered("s3"):
            self.db.register_filesystem(_s3_filesystem())
        # A damaged gzip file is read apart (what is sound of it), so that it fails neither the
        # batch nor, silently, itself: DuckDB checks neither the CRC nor the length of a member.
        damaged = {file: damage for file in files if file.endswith(".gz") and (damage := gzip_damage(file))}
        for file, damage in damaged.items():
            self._load_damaged(file, damage, strict)
        sound = [file for file in files if file not in damaged]
        with _Progress(self.db, on_progress) if on_progress is not None else contextlib.nullcontext():
            if sound:
                self._load_batch(sound, strict)

    def _partial(self, files: Sequence[str]) -> Partial:
        """What this scanner read, to hand to the merge: its aggregates combined to one row per key
        (a percentile's values into a histogram, a distinct count's into a set), as Parquet."""
        aggregates = None
        if self._loaded:
            types = dict(self.db.execute("SELECT column_name, column_type FROM (DESCRIBE partials)").fetchall())
            combined = []
            for name, combine in self._combine.items():
                if combine == "histogram":
                    combined.append(f"list_aggregate(flatten(list({name})), 'histogram') AS {name}")
                elif combine == "set":
                    combined.append(f"list_distinct(flatten(list({name}))) AS {name}")
                else:  # a sum of BIGINT would widen to HUGEINT
                    combined.append(f"CAST({combine}({name}) AS {types[name]}) AS {name}")
            query = f"SELECT {', '.join([*self._key_columns, *combined])} FROM partials GROUP BY ALL"
            with tempfile.TemporaryDirectory(prefix="extalerts-") as folder:
                path = Path(folder) / "partial.parquet"
                self.db.execute(f"COPY ({query}) TO {sql_string(str(path))} (FORMAT parquet)")
                aggregates = path.read_bytes()
        return Partial(
            files=list(files),
            aggregates=aggregates,
            events=self.events,
            bad_line_count=self.bad_line_count,
            bad_lines=list(self.bad_lines),
            warnings=list(self.warnings),
            exact_reads=self.exact_reads,
            file_spans=dict(self._file_spans),
            type_mismatches=dict(self.type_mismatches),
        )

    def _load_batch(self, files: Sequence[str], strict: bool) -> None:
        # One parallel scan of the batch, aggregated as it goes, per input file too; a line that is
        # not an event arrives as a row without a timestamp, counted apart.
        try:
            self._stage(self.fields_query(files), files)
        except EngineError as error:
            if len(files) == 1:
                if "maximum_object_size" in str(error):
                    self._load_without_long_lines(files[0], strict)
                    return
                if strict or not files[0].endswith(".gz") or "gzip" not in str(error).lower():
                    raise
                self._load_damaged(files[0], GzipDamage(0, "unreadable", str(error)), strict)
                return
            for file in files:  # file by file, so that an error names its file
                self._load_batch([file], strict)
            return
        totals = self._staged_totals()
        variant_files = sorted(n for n, (_, _, variants) in totals.items() if variants)
        for number in variant_files:
            # Shapes the typed columns cannot hold: this file's rows are read again the exact way.
            self.exact_reads += 1
            self.db.execute(f"DELETE FROM staged WHERE _file = {number}")
            exact = self.fields_query(files[number], exact=True, file_number=str(number))
            self._stage(exact, [files[number]], into_staged=True)
        if variant_files:
            totals = self._staged_totals()
        if self._loaded:
            self.db.execute("INSERT INTO partials SELECT * FROM staged")
        else:
            self.db.execute("CREATE OR REPLACE TEMP TABLE partials AS SELECT * FROM staged")
            self._loaded = True
        spans = self.db.execute(
            "SELECT _file, min(_first), max(_last) FROM staged WHERE _first IS NOT NULL GROUP BY _file"
        ).fetchall()
        for number, first, last in spans:
            self._file_spans[files[int(number)]] = (int(first), int(last))
        for number, file in enumerate(files):
            rows, events, _ = totals.get(number, (0, 0, 0))
            self.events += events
            if rows > events:
                self._locate_bad_lines(file, rows - events, strict)
        self._check_types(files)

    def _load_damaged(self, file: str, damage: GzipDamage, strict: bool) -> None:
        """A damaged gzip archive (cut short by an interrupted upload or copy, or corrupt): read every
        whole line before the damage, and say so with where it is, rather than lose the replay or
        the other files. ``--strict`` stops instead."""
        if strict:
            raise EngineError(f"{file}: {damage} (--strict stops; without it the lines before the damage are read)")
        with tempfile.TemporaryDirectory(prefix="extalerts-") as folder:
            salvaged = str(Path(folder) / "salvaged.ndjson")
            kept, found = _salvage_gzip(file, salvaged)
            if kept == 0:
                self.warnings.append(f"{file}: {damage}, before any whole line; skipped (fetch the file again)")
                return
            problem = {
                "cut short": "read the {kept:,} whole lines before the cut (fetch the file again for the rest",
                "corrupt": "read the {kept:,} whole lines before the damage (fetch the file again for the rest",
                "trailing": "read all {kept:,} lines before them (nothing is missing unless the file was joined "
                "with another",
            }[found.how if found is not None and found.how != "unreadable" else "corrupt"].format(kept=kept)
            self.warnings.append(f"{file}: {damage}; {problem}; --strict stops instead)")
            self._load_copy(file, salvaged)

    def _load_copy(self, file: str, copy: str) -> None:
        """Read ``copy``, a readable copy of ``file`` line for line; what it reports names ``file``."""
        before = len(self.bad_lines)
        self._load_batch([copy], strict=False)
        self.bad_lines[before:] = [BadLine(file, b.line, b.reason) for b in self.bad_lines[before:]]
        if copy in self._file_spans:
            self._file_spans[file] = self._file_spans.pop(copy)
        for name, (count, first) in self.type_mismatches.items():
            if first is not None and first[0] == copy:
                self.type_mismatches[name] = (count, (file, first[1]))

    def _load_without_long_lines(self, file: str, strict: bool) -> None:
        """A line longer than DuckDB reads makes a bad line, not a bad file: the file is read from a
        copy where each such line is blank (so the others keep their numbers); ``--strict`` stops."""
        with tempfile.TemporaryDirectory(prefix="extalerts-") as folder:
            copy = str(Path(folder) / "lines.ndjson")
            long_lines = _copy_without_long_lines(file, copy, stop_at_first=strict)
            reason = f"a line longer than {MAX_LINE_BYTES // 1024**2} MiB, more than an event holds"
            located = [BadLine(file, number, f"{reason} ({size:,} bytes)") for number, size in long_lines]
            if strict:
                where = str(located[0]) if located else f"{file}: {reason}"
                raise EngineError(f"{where} (--strict stops at the first bad line; without it, bad lines are skipped)")
            self.bad_line_count += len(located)
            room = max(MAX_REPORTED_BAD_LINES - len(self.bad_lines), 0)
            self.bad_lines.extend(located[:room])
            self._load_copy(file, copy)

    def _locate_bad_lines(self, file: str, bad: int, strict: bool) -> None:
        """Only when a file has bad lines: find them, reading it again line by line. (A DuckDB scan
        cannot: around a line that is not an object it drops the rows of the whole chunk.)"""
        self.bad_line_count += bad
        room = MAX_REPORTED_BAD_LINES - len(self.bad_lines)
        wanted = min(bad, max(room, 1 if strict else 0))
        if not wanted:
            return
        reason = "not a Workers Trace Event (bad JSON or no EventTimestampMs)"
        located = [BadLine(file, number, reason) for number in _bad_line_numbers(file, wanted)]
        self.bad_lines.extend(located)
        if len(located) < wanted:
            # The whole file was read and fewer lines found than the scan skipped: say so, rather
            # than leave a count without a single line to look at.
            missed = bad - len(located)
            more = "more line" if missed == 1 else "more lines"
            self.bad_lines.append(
                BadLine(
                    file,
                    0,
                    f"{missed:,} {more} not read as a Workers Trace Event, which reading it line by line "
                    "does not find (check that the file is UTF-8 NDJSON, one event a line)",
                )
            )
        if strict:
            # Should the line-by-line reading disagree with the scan, --strict still stops.
            where = str(located[0]) if located else f"{file}: {plural(bad, 'line')} not read as Workers Trace Events"
            raise EngineError(f"{where} (--strict stops at the first bad line; without it, bad lines are skipped)")


#: A batch of input files read by one query: at most this many files, and this many bytes unless one
#: file alone is larger.
BATCH_FILES = 256
BATCH_BYTES = 2 * 1024**3


def _batches(files: Sequence[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    batches: list[list[tuple[str, int]]] = []
    for file, size in files:
        if not batches or len(batches[-1]) >= BATCH_FILES or sum(s for _, s in batches[-1]) + size > BATCH_BYTES:
            batches.append([])
        batches[-1].append((file, size))
    return batches


class _Progress:
    """Reports the running query's progress (a share from 0 to 1) from a thread while it runs."""

    INTERVAL_S = 0.2

    def __init__(self, db: Any, report: Callable[[float], None]) -> None:
        import threading

        self.db, self.report = db, report
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="extalerts-progress", daemon=True)

    def __enter__(self) -> _Progress:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _watch(self) -> None:
        while not self.stopped.wait(self.INTERVAL_S):
            percent = self.db.query_progress()
            if percent >= 0:  # -1: no query running
                self.report(min(percent, 100.0) / 100)
