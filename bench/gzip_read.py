"""Reading gzip archives: DuckDB's own gzip reader against Python-side decompression with ISA-L feeding DuckDB.

Logpush writes gzip files, from one large file to thousands of small ones. The engine reads a ``.gz``
file in two passes: ``gzip_damage`` inflates it in Python to check every member's CRC and length
(with ISA-L, ``isal.isal_zlib``; zlib only to locate a damage), then DuckDB reads it with its own
gzip reader. This section times, side by side in one run, on one large file (the replay file
gzipped) and on many small ones (the same events in :data:`SMALL_FILES` files):

1. DuckDB's own gzip reader alone (the baseline of the ratios);
2. the check inflating with zlib, then DuckDB's reader (the engine before ISA-L);
3. the check inflating with ISA-L, then DuckDB's reader (the engine);
4. ISA-L decompressing into a named pipe that DuckDB reads as plain NDJSON, one pass (large file);
5. ISA-L decompressing into temporary plain files that DuckDB then reads.

Every DuckDB query is ``count(*)`` over ``read_json`` with the engine's columns (see ``replay.py``), and
every variant must count the same events. Each runs :data:`REPEATS` times in this process, interleaved;
"best" is the fastest wall time, "CPU" the process CPU time of that kind of run (both threads).
"""

from __future__ import annotations

import gzip as gzip_module  # the standard library: this module is named gzip_read so as not to shadow it
import os
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extalerts.engine import gzip_damage
from extalerts.engine.salvage import _inflate_members
from layout import goal_line, ratio, table

SMALL_FILES = 200
REPEATS = 3
#: Compression level of the archives: gzip's default, which Logpush's files are close to.
LEVEL = 6
_CHUNK = 1 << 20
ZLIB_CHECK = "check (zlib), then DuckDB: engine before"
ISAL_CHECK = "check (ISA-L), then DuckDB: engine"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------- the archives


def write_archives(plain: Path, directory: Path, small_files: int = SMALL_FILES) -> tuple[Path, list[Path]]:
    """``plain`` gzipped as one file, and its lines spread over ``small_files`` gzip files in order."""
    large = directory / "events.ndjson.gz"
    with plain.open("rb") as source, gzip_module.open(large, "wb", compresslevel=LEVEL) as out:
        shutil.copyfileobj(source, out, _CHUNK)
    lines = plain.read_bytes().splitlines(keepends=True)
    per_file = -(-len(lines) // small_files)
    small: list[Path] = []
    folder = directory / "archive"
    folder.mkdir()
    for index in range(small_files):
        path = folder / f"{index:04d}.ndjson.gz"
        path.write_bytes(gzip_module.compress(b"".join(lines[index * per_file : (index + 1) * per_file]), LEVEL))
        small.append(path)
    return large, small


# --------------------------------------------------------------------------------------------- the readings


def _through_pipe(file: Path, read: Callable[[str], int], directory: Path) -> int:
    """ISA-L decompresses ``file`` into a named pipe in a thread while DuckDB reads the pipe."""
    import isal.igzip

    pipe = directory / "pipe.ndjson"
    os.mkfifo(pipe)
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            with isal.igzip.open(file, "rb") as source, pipe.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
        except BaseException as exc:  # handed to the reading thread
            failure.append(exc)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        return read(str(pipe))
    finally:
        writer.join()
        pipe.unlink()
        if failure:
            raise failure[0]


def _through_files(files: Sequence[Path], read: Callable[[Sequence[str]], int], directory: Path) -> int:
    """ISA-L decompresses every file into a temporary plain file (two threads: isal releases the GIL),
    then DuckDB reads them all in one query."""
    import isal.igzip

    folder = Path(tempfile.mkdtemp(dir=directory))

    def inflate(file: Path) -> str:
        target = folder / file.name.removesuffix(".gz")
        with isal.igzip.open(file, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        return str(target)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            plain = list(pool.map(inflate, files))
        return read(plain)
    finally:
        shutil.rmtree(folder)


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Timing:
    label: str
    best_s: float
    cpu_s: float
    events: int


@dataclass(frozen=True)
class GzipBench:
    large_bytes: int
    small_bytes: int
    small_files: int
    plain_bytes: int
    events: int
    large: tuple[Timing, ...]
    small: tuple[Timing, ...]


def _measure(runs: Sequence[tuple[str, Callable[[], int]]], repeats: int) -> tuple[Timing, ...]:
    best: dict[str, tuple[float, float, int]] = {}
    for _ in range(repeats):
        for label, run in runs:
            cpu, started = _cpu(), time.perf_counter()
            events = run()
            seconds, used = time.perf_counter() - started, _cpu() - cpu
            previous = best.get(label)
            if previous is not None and previous[2] != events:
                raise SystemExit(f"bench gzip: {label} counted {events:,} events, then {previous[2]:,}")
            best[label] = (min(seconds, previous[0]) if previous else seconds, used, events)
    return tuple(Timing(label, *best[label]) for label, _ in runs)


def bench(plain: Path, columns: dict[str, str], *, repeats: int = REPEATS, small_files: int = SMALL_FILES) -> GzipBench:
    """Gzip ``plain`` (NDJSON) as one file and as ``small_files`` files, then time every reading."""
    import duckdb

    spec = ", ".join(f"\"{name}\": '{kind}'" for name, kind in columns.items())
    db = duckdb.connect()
    db.execute("SET enable_progress_bar = false")

    def read(files: str | Sequence[str]) -> int:
        listed = [files] if isinstance(files, str) else list(files)
        names = "[" + ", ".join("'" + name.replace("'", "''") + "'" for name in listed) + "]"
        query = (
            f"SELECT count(*) FROM read_json({names}, format='newline_delimited', ignore_errors=true, "  # noqa: S608
            f"maximum_object_size=16777216, columns={{{spec}}})"
        )
        row = db.execute(query).fetchone()
        return int(row[0]) if row else 0

    def checked(check: Callable[[Path], Any], files: Sequence[Path]) -> Callable[[], int]:
        def run() -> int:
            for file in files:
                check(file)
            return read([str(file) for file in files])

        return run

    with tempfile.TemporaryDirectory(prefix="extalerts-bench-gzip-") as tmp:
        directory = Path(tmp)
        large, small = write_archives(plain, directory, small_files)
        zlib_check = lambda file: _inflate_members(str(file), lambda _: None)  # noqa: E731
        isal_check = lambda file: gzip_damage(str(file))  # noqa: E731
        large_runs: list[tuple[str, Callable[[], int]]] = [
            ("DuckDB's gzip reader", lambda: read(str(large))),
            (ZLIB_CHECK, checked(zlib_check, [large])),
            (ISAL_CHECK, checked(isal_check, [large])),
            ("ISA-L into a pipe DuckDB reads", lambda: _through_pipe(large, read, directory)),
            ("ISA-L into a plain file, then DuckDB", lambda: _through_files([large], read, directory)),
        ]
        small_runs: list[tuple[str, Callable[[], int]]] = [
            ("DuckDB's gzip reader", lambda: read([str(f) for f in small])),
            (ZLIB_CHECK, checked(zlib_check, small)),
            (ISAL_CHECK, checked(isal_check, small)),
            ("ISA-L into plain files, then DuckDB", lambda: _through_files(small, read, directory)),
        ]
        large_timings = _measure(large_runs, repeats)
        small_timings = _measure(small_runs, repeats)
        sizes = large.stat().st_size, sum(f.stat().st_size for f in small)
    events = large_timings[0].events
    for timing in (*large_timings, *small_timings):
        if timing.events != events:
            raise SystemExit(f"bench gzip: {timing.label} counted {timing.events:,} events, not {events:,}")
    return GzipBench(
        large_bytes=sizes[0],
        small_bytes=sizes[1],
        small_files=small_files,
        plain_bytes=plain.stat().st_size,
        events=events,
        large=large_timings,
        small=small_timings,
    )


# --------------------------------------------------------------------------------------------- report


def _rows(timings: Sequence[Timing]) -> list[list[str]]:
    base = timings[0]
    return [
        [t.label, f"{t.best_s:,.2f} s", f"{t.cpu_s:,.2f} s", ratio(t.best_s, base.best_s), ratio(base.best_s, t.best_s)]
        for t in timings
    ]


def gain_of(timings: Sequence[Timing]) -> float:
    """The engine's gzip check with zlib over the same with ISA-L (both followed by DuckDB's reader)."""
    found = {t.label: t for t in timings}
    return found[ZLIB_CHECK].best_s / found[ISAL_CHECK].best_s


def section(result: GzipBench) -> str:
    headers = ["reading", "best", "CPU", "vs DuckDB", "speed-up"]

    def gain(timings: Sequence[Timing]) -> str:
        return f"{gain_of(timings):,.2f}×"

    met = all(gain_of(timings) > 1 for timings in (result.large, result.small))

    return "\n".join(
        [
            "5. gzip",
            f"   {result.events:,} events ({result.plain_bytes / 1e6:,.0f} MB of NDJSON) gzipped at level {LEVEL}: "
            f"one {result.large_bytes / 1e6:,.0f} MB file, and {result.small_files} files "
            f"({result.small_bytes / 1e6:,.0f} MB in all).",
            "   count(*) over read_json with the engine's columns; the check is the engine's gzip damage check,",
            "   inflating with zlib (before) or ISA-L (now). speed-up: DuckDB's reader alone over the row.",
            "",
            "   One large file:",
            "",
            table(headers, _rows(result.large)),
            "",
            f"   {result.small_files} small files:",
            "",
            table(headers, _rows(result.small)),
            "",
            goal_line(
                "gzip: the engine's check with ISA-L beats zlib's",
                met,
                f"one file {gain(result.large)}, {result.small_files} files {gain(result.small)}",
            ),
        ]
    )


def as_json(result: GzipBench) -> dict[str, Any]:
    def timings(values: Sequence[Timing]) -> list[dict[str, Any]]:
        return [
            {"reading": t.label, "best_s": t.best_s, "cpu_s": t.cpu_s, "speedup": values[0].best_s / t.best_s}
            for t in values
        ]

    return {
        "events": result.events,
        "plain_bytes": result.plain_bytes,
        "large_gz_bytes": result.large_bytes,
        "small_files": result.small_files,
        "small_gz_bytes": result.small_bytes,
        "large": timings(result.large),
        "small": timings(result.small),
    }
