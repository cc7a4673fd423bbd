"""Parallel replay: 1 against 2 local workers, and a Dask cluster against local workers, over one archive.

The replay file of the replay section is split, line order kept, into :data:`ARCHIVE_FILES` NDJSON files
(minutes and groups straddle files, as in a Logpush archive). Then, each in a fresh process running
what ``extalerts replay ARCHIVE`` runs (the spec of ``monitors/``, ``Engine.load`` and ``evaluate``),
interleaved round by round:

1. ``--workers 1 --threads 1`` and ``--workers 2 --threads 1``: one worker against two, each worker
   one DuckDB thread (a worker is a core's worth of reading, as a Dask worker with one thread), so
   the ratio is how the map step and the merge scale with workers, whatever the machine's cores;
2. ``--scheduler tcp://…`` on a Dask ``LocalCluster`` of 2 single-threaded worker processes started by
   this bench (``dask[distributed]``), with ``--threads 1``, against ``--workers 2 --threads 1``;
3. for reference, the default: one process whose DuckDB reads on every core. On a machine with two
   cores it is as fast as two workers: there, ``--workers`` has no core left to add;
4. the machine's ceiling for the speed-up: two independent ``--threads 1`` replays of half the files
   each, started together, timed until both are done, against ``--workers 1 --threads 1``. Nothing
   is shared or merged, so no way of spreading the work over two workers can do better here.

The timed work is ``load`` and ``evaluate``, as in the replay section: the local workers' start is
in it, the interpreter's start and the spec are not (the whole process is listed too); the cluster
is started before and is not timed. Every run must report the same events and the same transitions
for every rule, or the bench stops. Goals (issue #18): 2 workers at least :data:`WORKERS_SPEEDUP_GOAL`
faster than 1; Dask within :data:`DASK_RATIO_GOAL` of ``--workers 2``. Without ``distributed``
installed, the Dask run is reported as not measured, never as a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layout import goal_line, ratio, table

ARCHIVE_FILES = 16
MONITORS = Path(__file__).resolve().parent.parent / "monitors"
REPEATS = 3
WORKERS_SPEEDUP_GOAL = 1.7
DASK_RATIO_GOAL = 1.3


def split_archive(plain: Path, folder: Path, files: int = ARCHIVE_FILES) -> list[Path]:
    """``plain``'s lines over ``files`` NDJSON files in ``folder``, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = plain.read_bytes().splitlines(keepends=True)
    per_file = -(-len(lines) // files)
    written = []
    for index in range(files):
        path = folder / f"{index:04d}.ndjson"
        path.write_bytes(b"".join(lines[index * per_file : (index + 1) * per_file]))
        written.append(path)
    return written


@dataclass(frozen=True)
class Run:
    """One way of running the replay: its best wall time, or why it was not measured."""

    label: str
    seconds: tuple[float, ...] = ()
    process_seconds: tuple[float, ...] = ()
    missing: str | None = None

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.seconds else None

    def over(self, other: Run) -> float | None:
        """This run's best over ``other``'s (None when either was not measured)."""
        if self.best is None or other.best is None:
            return None
        return self.best / other.best


#: A replay as ``extalerts replay`` runs it, timed from ``load`` to the end of ``evaluate``; argv: the
#: spec folder, the options as JSON, the files. Prints one JSON object.
_CHILD = """\
import json, sys, time
from extalerts.engine import Engine
from extalerts.spec import load_spec


def main():
    spec_folder, options, files = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    engine = Engine(load_spec([spec_folder]), threads=options.get("threads"))
    started = time.perf_counter()
    engine.load(files, workers=options.get("workers"), scheduler=options.get("scheduler"))
    result = engine.evaluate()
    seconds = time.perf_counter() - started
    transitions = {rule_id: repr(rule.transitions) for rule_id, rule in sorted(result.rules.items())}
    print(json.dumps({"seconds": seconds, "events": result.events, "transitions": transitions}))


if __name__ == "__main__":  # local workers are spawned processes, which import this again
    main()
"""


@dataclass(frozen=True)
class Timed:
    """One replay process: the timed work, the whole process, and what it answered."""

    seconds: float
    process_seconds: float
    outcome: Any


def _start(files: Sequence[Path], options: dict[str, Any], cwd: Path) -> tuple[float, subprocess.Popen[str]]:
    argv = [sys.executable, "-c", _CHILD, str(MONITORS), json.dumps(options), *map(str, files)]
    started = time.perf_counter()
    return started, subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(started: float, process: subprocess.Popen[str], what: str) -> Timed:
    stdout, stderr = process.communicate()
    process_seconds = time.perf_counter() - started
    if process.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise SystemExit(f"bench workers: {what} failed (exit {process.returncode}):\n{tail}")
    report = json.loads(stdout.strip().splitlines()[-1])
    return Timed(float(report["seconds"]), process_seconds, (report["events"], report["transitions"]))


def _replay(files: Sequence[Path], options: dict[str, Any], cwd: Path) -> Timed:
    """One replay process over ``files``."""
    return _finish(*_start(files, options, cwd), f"the replay with {options}")


def _halves_together(files: Sequence[Path], cwd: Path) -> float:
    """Two single-thread replays, of the even and of the odd files, started together: the time until
    both are done with their work (the longer of the two timed works)."""
    halves = [_start(files[first::2], {"threads": 1}, cwd) for first in (0, 1)]
    return max(_finish(started, process, "a half of the archive").seconds for started, process in halves)


@contextmanager
def _dask_cluster() -> Iterator[str | None]:
    """A Dask LocalCluster of 2 single-threaded worker processes: its scheduler address (None without
    ``distributed``)."""
    try:
        from distributed import LocalCluster
    except ImportError:
        yield None
        return
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield str(cluster.scheduler_address)


@dataclass(frozen=True)
class WorkersBench:
    files: int
    events: int | None
    one: Run
    two: Run
    dask: Run
    #: The default single process, DuckDB on every core (reference, no goal).
    default: Run
    #: Two independent single-thread replays of half the files each, together (the ceiling).
    halves: Run

    @property
    def speedup(self) -> float | None:
        """``--workers 1`` over ``--workers 2``: how much faster two are."""
        return self.one.over(self.two)

    @property
    def dask_ratio(self) -> float | None:
        """Dask over ``--workers 2``: how much slower the cluster is."""
        return self.dask.over(self.two)

    @property
    def ceiling(self) -> float | None:
        """``--workers 1 --threads 1`` over the two halves together: the most two workers can gain here."""
        return self.one.over(self.halves)

    @property
    def default_ratio(self) -> float | None:
        """The default single process over ``--workers 2``."""
        return self.default.over(self.two)

    @property
    def speedup_goal_met(self) -> bool | None:
        return None if self.speedup is None else self.speedup >= WORKERS_SPEEDUP_GOAL

    @property
    def dask_goal_met(self) -> bool | None:
        return None if self.dask_ratio is None else self.dask_ratio <= DASK_RATIO_GOAL


def bench(plain: Path, *, repeats: int = REPEATS, files: int = ARCHIVE_FILES) -> WorkersBench:
    """Split ``plain`` into an archive of ``files`` files and time each way of replaying it."""
    with tempfile.TemporaryDirectory(prefix="extalerts-bench-workers-") as tmp:
        directory = Path(tmp)
        archive = split_archive(plain, directory / "archive", files)
        with _dask_cluster() as scheduler:
            ways: dict[str, dict[str, Any] | str] = {
                "--workers 1 --threads 1": {"workers": 1, "threads": 1},
                "--workers 2 --threads 1": {"workers": 2, "threads": 1},
                "--scheduler (Dask LocalCluster, 2 workers) --threads 1": (
                    {"scheduler": scheduler, "threads": 1}
                    if scheduler
                    else "distributed is not installed (dask[distributed])"
                ),
                "default: one process, DuckDB on every core": {},
            }
            timed: dict[str, list[Timed]] = {label: [] for label in ways}
            halves: list[float] = []
            for _ in range(repeats):
                halves.append(_halves_together(archive, directory))
                for label, way in ways.items():
                    if not isinstance(way, str):
                        timed[label].append(_replay(archive, way, directory))
    outcomes = {json.dumps(t.outcome) for runs in timed.values() for t in runs}
    if len(outcomes) > 1:
        raise SystemExit("bench workers: the ways of running disagree on the events or transitions")
    runs = [
        Run(
            label,
            tuple(t.seconds for t in timed[label]),
            tuple(t.process_seconds for t in timed[label]),
            way if isinstance(way, str) else None,
        )
        for label, way in ways.items()
    ]
    events = next(iter(t.outcome[0] for runs_ in timed.values() for t in runs_), None)
    halves_run = Run("ceiling: 2 independent single-thread replays of half the files", tuple(halves))
    return WorkersBench(
        files=files, events=events, one=runs[0], two=runs[1], dask=runs[2], default=runs[3], halves=halves_run
    )


def section(result: WorkersBench) -> str:
    base = result.two.best

    def row(run: Run) -> list[str]:
        if run.best is None:
            return [run.label, "not measured", "—", "—"]
        process = f"{min(run.process_seconds):,.2f} s" if run.process_seconds else "—"
        return [run.label, f"{run.best:,.2f} s", process, ratio(run.best, base) if base else "—"]

    runs = (result.one, result.two, result.dask, result.default, result.halves)
    notes = [f"   {run.label}: not measured, {run.missing}." for run in runs if run.missing]
    speedup = "not measured" if result.speedup is None else f"{result.speedup:,.2f}×"
    if result.speedup is not None and result.ceiling is not None:
        speedup += f"; this machine's ceiling {result.ceiling:,.2f}×"
    dask = "not measured" if result.dask_ratio is None else f"{result.dask_ratio:,.2f}×"
    events = f"{result.events:,} events" if result.events is not None else "the replay file's events"
    return "\n".join(
        [
            "6. Parallel replay",
            f"   {events} in an archive of {result.files} NDJSON files (split in line order: minutes and groups",
            "   straddle files). Each run is a fresh process replaying the archive, timed from load to the end",
            "   of evaluate (the workers' start included); every run must report the same events and",
            "   transitions. Each worker reads on one DuckDB thread (--threads 1); the default single process,",
            "   on every core, is listed for reference. Ratios against --workers 2 --threads 1.",
            "",
            table(["replay", "load + evaluate", "process", "vs --workers 2"], [row(run) for run in runs]),
            "",
            *notes,
            *([""] if notes else []),
            goal_line(
                f"2 local workers at least {WORKERS_SPEEDUP_GOAL:g}× faster than 1", result.speedup_goal_met, speedup
            ),
            goal_line(f"Dask LocalCluster within {DASK_RATIO_GOAL:g}× of --workers 2", result.dask_goal_met, dask),
        ]
    )


def as_json(result: WorkersBench) -> dict[str, Any]:
    def run(value: Run) -> dict[str, Any]:
        return {
            "samples_s": list(value.seconds),
            "best_s": value.best,
            "process_samples_s": list(value.process_seconds),
            "not_measured": value.missing,
        }

    return {
        "files": result.files,
        "events": result.events,
        "workers_1": run(result.one),
        "workers_2": run(result.two),
        "dask_2": run(result.dask),
        "default_one_process": run(result.default),
        "default_over_workers_2": result.default_ratio,
        "halves_together": run(result.halves),
        "ceiling_speedup": result.ceiling,
        "speedup_2_over_1": result.speedup,
        "dask_over_workers_2": result.dask_ratio,
        "goals": {
            "speedup_min": WORKERS_SPEEDUP_GOAL,
            "speedup_met": result.speedup_goal_met,
            "dask_ratio_max": DASK_RATIO_GOAL,
            "dask_met": result.dask_goal_met,
        },
    }


if __name__ == "__main__":  # a quick look: python bench/workers.py FILE.ndjson
    print(section(bench(Path(sys.argv[1]), repeats=1)))
