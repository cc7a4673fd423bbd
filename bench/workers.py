"""Parallel replay: 1 against 2 local workers, and a Dask cluster against local workers, over one archive.

The replay file of the replay section is split, line order kept, into :data:`ARCHIVE_FILES` NDJSON files
(minutes and groups straddle files, as in a Logpush archive). Then, each a fresh ``extalerts replay
ARCHIVE --output json`` process, interleaved round by round:

1. ``--workers 1 --threads 1`` and ``--workers 2 --threads 1``: one worker against two, each worker
   one DuckDB thread (a worker is a core's worth of reading, as a Dask worker with one thread), so
   the ratio is how the map step and the merge scale with workers, whatever the machine's cores;
2. ``--scheduler tcp://…`` on a Dask ``LocalCluster`` of 2 single-threaded worker processes started by
   this bench (``dask[distributed]``), with ``--threads 1``, against ``--workers 2 --threads 1``;
3. for reference, the default: one process whose DuckDB reads on every core. On a machine with two
   cores it is as fast as two workers: there, ``--workers`` has no core left to add.

The timed work is the whole process, from start to exit; the cluster is started before and is not
timed. Every run must report the same events and the same transitions for every rule, or the bench
stops. Goals (issue #18): 2 workers at least :data:`WORKERS_SPEEDUP_GOAL` faster than 1; Dask within
:data:`DASK_RATIO_GOAL` of ``--workers 2``. A run whose option this extalerts lacks, or without
``distributed`` installed, is reported as not measured, never as a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
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


def _extalerts() -> str:
    return str(Path(sysconfig.get_path("scripts")) / "extalerts")


@dataclass(frozen=True)
class Run:
    """One way of running the replay: its best wall time, or why it was not measured."""

    label: str
    seconds: tuple[float, ...] = ()
    missing: str | None = None

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.seconds else None


def _outcome(report: dict[str, Any]) -> Any:
    """What every way of running must agree on: the events, and each rule's transitions."""
    rules = report.get("rules", {})
    keyed = rules.items() if isinstance(rules, dict) else ((r.get("id"), r) for r in rules)
    return report.get("events"), sorted((str(rule_id), json.dumps(rule.get("transitions"))) for rule_id, rule in keyed)


def _replay(archive: Path, options: Sequence[str], cwd: Path) -> tuple[float, dict[str, Any] | str]:
    """One replay process: its wall time and its JSON report, or the reason it could not run."""
    started = time.perf_counter()
    completed = subprocess.run(
        [_extalerts(), "replay", str(archive), "--spec", str(MONITORS), *options, "--output", "json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if completed.returncode == 2 and "no such option" in completed.stderr.lower():
        return seconds, f"this extalerts lacks an option of {' '.join(options)}"
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"bench workers: replay {' '.join(options)} failed (exit {completed.returncode}):\n{tail}")
    report: dict[str, Any] = json.loads(completed.stdout)
    return seconds, report


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

    @property
    def speedup(self) -> float | None:
        """``--workers 1`` over ``--workers 2``: how much faster two are."""
        if self.one.best is None or self.two.best is None:
            return None
        return self.one.best / self.two.best

    @property
    def dask_ratio(self) -> float | None:
        """Dask over ``--workers 2``: how much slower the cluster is."""
        if self.dask.best is None or self.two.best is None:
            return None
        return self.dask.best / self.two.best

    @property
    def default_ratio(self) -> float | None:
        """The default single process over ``--workers 2``."""
        if self.default.best is None or self.two.best is None:
            return None
        return self.default.best / self.two.best

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
        archive = directory / "archive"
        split_archive(plain, archive, files)
        with _dask_cluster() as scheduler:
            ways: dict[str, list[str] | str] = {
                "replay --workers 1 --threads 1": ["--workers", "1", "--threads", "1"],
                "replay --workers 2 --threads 1": ["--workers", "2", "--threads", "1"],
                "replay --scheduler (Dask LocalCluster, 2 workers) --threads 1": (
                    ["--scheduler", scheduler, "--threads", "1"]
                    if scheduler
                    else "distributed is not installed (dask[distributed])"
                ),
                "replay (one process, DuckDB on every core)": [],
            }
            seconds: dict[str, list[float]] = {label: [] for label in ways}
            missing: dict[str, str] = {label: way for label, way in ways.items() if isinstance(way, str)}
            outcomes: dict[str, Any] = {}
            for _ in range(repeats):
                for label, way in ways.items():
                    if label in missing or isinstance(way, str):
                        continue
                    took, report = _replay(archive, way, directory)
                    if isinstance(report, str):
                        missing[label] = report
                        continue
                    seconds[label].append(took)
                    outcomes[label] = _outcome(report)
    if len({json.dumps(outcome) for outcome in outcomes.values()}) > 1:
        raise SystemExit(f"bench workers: the ways of running disagree on the results: {sorted(outcomes)}")
    runs = [Run(label, tuple(seconds[label]), missing.get(label)) for label in ways]
    events = next(iter(outcomes.values()))[0] if outcomes else None
    return WorkersBench(files=files, events=events, one=runs[0], two=runs[1], dask=runs[2], default=runs[3])


def section(result: WorkersBench) -> str:
    base = result.two.best

    def row(run: Run) -> list[str]:
        if run.best is None:
            return [run.label, "not measured", "—"]
        return [run.label, f"{run.best:,.2f} s", ratio(run.best, base) if base else "—"]

    runs = (result.one, result.two, result.dask, result.default)
    notes = [f"   {run.label}: not measured, {run.missing}." for run in runs if run.missing]
    speedup = "not measured" if result.speedup is None else f"{result.speedup:,.2f}×"
    dask = "not measured" if result.dask_ratio is None else f"{result.dask_ratio:,.2f}×"
    events = f"{result.events:,} events" if result.events is not None else "the replay file's events"
    return "\n".join(
        [
            "6. Parallel replay",
            f"   {events} in an archive of {result.files} NDJSON files (split in line order: minutes and groups",
            "   straddle files). Each run is a fresh `extalerts replay ARCHIVE -o json` process, timed whole;",
            "   every run must report the same events and transitions. Each worker reads on one DuckDB thread",
            "   (--threads 1); the default single process, on every core, is listed for reference.",
            "   Ratios against --workers 2 --threads 1.",
            "",
            table(["run", "best", "vs --workers 2 --threads 1"], [row(run) for run in runs]),
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
        return {"samples_s": list(value.seconds), "best_s": value.best, "not_measured": value.missing}

    return {
        "files": result.files,
        "events": result.events,
        "workers_1": run(result.one),
        "workers_2": run(result.two),
        "dask_2": run(result.dask),
        "default_one_process": run(result.default),
        "default_over_workers_2": result.default_ratio,
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
