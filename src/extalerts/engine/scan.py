"""The scan: input files, in batches, through the staging query into the ``partials`` aggregates; bad
lines located, damaged archives salvaged, time outliers set aside."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from extalerts.engine.lines import LATEST_EVENT_MS, _bad_line_numbers, _lines_outside, _time_text
from extalerts.engine.results import (
    MINUTE_MS,
    BadLine,
    EngineError,
)
from extalerts.engine.salvage import GzipDamage, _copy_without_long_lines, _salvage_gzip, gzip_damage
from extalerts.engine.sources import (
    MAX_LINE_BYTES,
    _s3_filesystem,
    _size,
    expand_sources,
    write_events,
)
from extalerts.engine.staging import Staging
from extalerts.wording import plural

MAX_REPORTED_BAD_LINES = 20


#: Time outliers: events in a stretch of the input holding under this share of its events, apart
#: from every larger stretch by more than :data:`OUTLIER_GAP_MS` without an event (an event
#: stamped in seconds, a year early), are left out of the evaluation and reported.
OUTLIER_SHARE = 0.01
OUTLIER_GAP_MS = 86_400_000
#: The longest stretch of time one replay evaluates (memory grows with it, not with the events);
#: events beyond it, away from the bulk of the input, are time outliers too.
MAX_SPAN_MS = 92 * 86_400_000


MAX_REPORTED_OUTLIERS = 5


class Scan(Staging):
    """Loading: every input file read into ``partials``."""

    def load(
        self,
        sources: Sequence[str],
        *,
        strict: bool = False,
        on_file: Callable[[str], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        """Read every source. Bad lines are counted and reported by file and line; with ``strict``
        the first file holding one is an error. ``on_progress`` hears the share of the input read so
        far (0 to 1; by bytes, or by files for ``s3://``), several times a second, within large files too.

        Files are read in batches, one query each: DuckDB reads a batch's files in parallel, which
        matters for Logpush archives of many small gzip files (each one is a single stream)."""
        self.load_files(expand_sources(sources), strict=strict, on_file=on_file, on_progress=on_progress)

    def load_files(
        self,
        files: Sequence[str],
        *,
        strict: bool = False,
        on_file: Callable[[str], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        """As :meth:`load`, for files already expanded by :func:`expand_sources` (listing an
        ``s3://`` prefix again would cost a request per object)."""
        if any(f.startswith("s3://") for f in files) and not self.db.filesystem_is_registered("s3"):
            self.db.register_filesystem(_s3_filesystem())
        local = not any(f.startswith("s3://") for f in files)
        sizes = [_size(file) if local else 1 for file in files]
        batches = _batches(list(zip(files, sizes, strict=True)))
        import threading

        total, done, reported = max(sum(sizes), 1), 0, 0.0
        lock = threading.Lock()  # heard from the watching thread and from this one

        def report(share: float) -> None:
            nonlocal reported
            with lock:
                if on_progress is not None and share > reported:  # a batch read again restarts its query
                    reported = share
                    on_progress(share)

        for batch in batches:
            size = sum(size for _, size in batch)

            def within(query_share: float, before: int = done, size: int = size) -> None:
                report((before + query_share * size) / total)

            # A damaged gzip file is read apart (what is sound of it), so that it fails neither the
            # batch nor, silently, itself: DuckDB checks neither the CRC nor the length of a member.
            damaged = {file: damage for file, _ in batch if file.endswith(".gz") and (damage := gzip_damage(file))}
            for file, damage in damaged.items():
                self._load_damaged(file, damage, strict)
            sound = [file for file, _ in batch if file not in damaged]
            with _Progress(self.db, within) if on_progress is not None else contextlib.nullcontext():
                if sound:
                    self._load_batch(sound, strict)
            done += size
            report(done / total)
            for file, _ in batch:
                if on_file is not None:
                    on_file(file)
        self._set_aside_time_outliers()

    def load_events(self, events: Iterable[Mapping[str, Any]], *, strict: bool = True) -> None:
        """Evaluate over events given as dicts (written to a temporary NDJSON file and read like any other)."""
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "events.ndjson"
            write_events(events, path)
            self._load_batch([str(path)], strict=strict)

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

    def _set_aside_time_outliers(self) -> None:
        """Leave out of the evaluation the events stamped far from all the others (see
        :data:`OUTLIER_SHARE`), and those before 1970 or past year 9999, and warn with where they
        are: evaluating from 1970 for one event stamped in seconds would take a minute per minute."""
        if not self._loaded:
            return
        stretches = self.db.execute(
            f"""WITH minutes AS (
                SELECT _first // {MINUTE_MS} AS m, sum(_events) AS n FROM partials
                WHERE _first BETWEEN 0 AND {LATEST_EVENT_MS} GROUP BY 1),
            marked AS (SELECT m, n, CASE WHEN m - lag(m) OVER (ORDER BY m) > {OUTLIER_GAP_MS // MINUTE_MS}
                THEN 1 ELSE 0 END AS starts FROM minutes),
            numbered AS (SELECT m, n, sum(starts) OVER (ORDER BY m) AS stretch FROM marked)
            SELECT min(m), max(m), sum(n) FROM numbered GROUP BY stretch ORDER BY 1"""
        ).fetchall()
        low_ms, high_ms = _bulk(
            [(int(low) * MINUTE_MS, (int(high) + 1) * MINUTE_MS - 1, int(n)) for low, high, n in stretches]
        )
        outside = f"_last < {low_ms} OR _first > {high_ms}"
        row = self.db.execute(f"SELECT coalesce(sum(_events), 0) FROM partials WHERE {outside}").fetchone()
        count = int(row[0]) if row else 0
        if not count:
            return
        self.db.execute(f"DELETE FROM partials WHERE {outside}")
        self.time_outlier_count += count
        self.events -= count
        examples: list[str] = []
        for file, (first, last) in self._file_spans.items():
            if len(examples) < MAX_REPORTED_OUTLIERS and (first < low_ms or last > high_ms):
                wanted = MAX_REPORTED_OUTLIERS - len(examples)
                examples += [
                    f"{file}:{n} ({_time_text(ms)})" for n, ms in _lines_outside(file, low_ms, high_ms, wanted)
                ]
        events = "event" if count == 1 else "events"
        self.warnings.append(
            f"{count:,} {events} stamped far from the rest of the input ({_time_text(low_ms)} to "
            f"{_time_text(high_ms)}) left out of the evaluation (EventTimestampMs in seconds, or a clock "
            f"off?): {', '.join(examples) or 'not found reading the files again'}"
        )

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


def _bulk(stretches: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """The time range evaluated, from the input's stretches of events (first ms, last ms, events):
    the stretch holding the most events (the latest of equals), widened to every stretch holding
    at least :data:`OUTLIER_SHARE` of the events while the range spans at most :data:`MAX_SPAN_MS`.
    (0, -1) when there is none."""
    if not stretches:
        return 0, -1
    total = sum(n for _, _, n in stretches)
    low, high, _ = max(stretches, key=lambda s: (s[2], s[0]))
    for first, last, events in sorted(stretches, key=lambda s: -s[2]):
        if events >= OUTLIER_SHARE * total and max(high, last) - min(low, first) <= MAX_SPAN_MS:
            low, high = min(low, first), max(high, last)
    return low, high
