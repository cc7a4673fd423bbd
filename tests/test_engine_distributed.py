"""The map step and the merge: any split of the input, read in this process, in local worker
processes (--workers) or on a Dask cluster (--scheduler), gives the same answer for every rule."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from extalerts.engine import Engine, EngineError, EngineResult, Semantics, replay, scan
from extalerts.engine.parallel import _Pool
from extalerts.engine.scan import Scan
from extalerts.spec import load_spec
from extalerts.spec.loader import Spec
from extalerts.synth import SynthConfig, generate, parse_scenario
from tests.conftest import MONITORS, cli_run
from tests.test_engine import MEASURE, event, spec_with

#: Every bundled scenario, one after another: each bundled rule's incident is in the archive.
SCENARIOS = (
    "exception-storm@10m+3m",
    "invalid-url-flood@15m+5m",
    "error-rate@22m+3m",
    "client-errors@27m+3m",
    "do-errors@32m+4m",
    "do-latency-spike@38m+4m",
    "storage-growth@44m+10m",
    "cleanup-failure@56m+4m",
    "tool-mapping-failures@62m+3m",
    "traffic-spike@70m+4m",
    "conversation-surge@78m+3m",
    "script-silent@85m+20m",
)
BAD_LINES = ("not json", '{"EventTimestampMs": "soon"}', "[]")


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec([MONITORS])


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The archive's lines: ~25,000 events over 115 minutes, with a few bad lines among them."""
    path = tmp_path_factory.mktemp("archive") / "all.ndjson"
    scenarios = tuple(parse_scenario(text) for text in SCENARIOS)
    generate(SynthConfig(minutes=115, requests_per_minute=100, seed=3, scenarios=scenarios), path)
    lines = path.read_text().splitlines()
    for position, bad in zip((100, len(lines) // 2, len(lines) - 7), BAD_LINES, strict=True):
        lines.insert(position, bad)
    return lines


def write_files(folder: Path, parts: Sequence[Sequence[str]], *, gzipped: Sequence[int] = ()) -> list[str]:
    """One file per part, in order (the parts in ``gzipped`` compressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index, lines in enumerate(parts):
        text = "".join(f"{line}\n" for line in lines)
        if index in gzipped:
            path = folder / f"part-{index:02}.ndjson.gz"
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path = folder / f"part-{index:02}.ndjson"
            path.write_text(text)
        files.append(str(path))
    return files


def minute(line: str) -> int | None:
    try:
        return int(json.loads(line)["EventTimestampMs"]) // 60_000
    except (ValueError, KeyError, TypeError):
        return None


@pytest.fixture(scope="module")
def one_file(archive: list[str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return write_files(tmp_path_factory.mktemp("one"), [archive])


@pytest.fixture(scope="module")
def eight_files(archive: list[str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The archive in 8 consecutive files cut mid-minute (two of them gzip)."""
    cuts = [round(len(archive) * k / 8) + 17 * k for k in range(9)]
    cuts[-1] = len(archive)
    parts = [archive[a:b] for a, b in itertools.pairwise(cuts)]
    straddling = [minute(p[-1]) == minute(q[0]) for p, q in itertools.pairwise(parts)]
    assert sum(straddling) >= 6, "the cuts should fall inside minutes"
    return write_files(tmp_path_factory.mktemp("eight"), parts, gzipped=(2, 5))


def outcome(result: EngineResult) -> dict[str, Any]:
    """Everything a replay answers that does not name files: per rule its transitions, series and
    notifications; the events, their span, and how many lines were bad."""
    return {
        "events": result.events,
        "span": (result.first_ms, result.last_ms),
        "bad_line_count": result.bad_line_count,
        "rules": {
            rule_id: (r.evaluations, r.transitions, r.series, r.notifications, r.warning_notifications)
            for rule_id, r in sorted(result.rules.items())
        },
    }


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[str]:
    """A Dask cluster in this process (two workers), its scheduler's address."""
    from distributed import LocalCluster

    with LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_one_file_eight_files_two_workers_and_dask_agree_for_every_rule(
    spec: Spec, one_file: list[str], eight_files: list[str], local_cluster: str
) -> None:
    alone = outcome(replay(spec, one_file))
    assert alone["bad_line_count"] == len(BAD_LINES)
    fired = [rule_id for rule_id, (_, transitions, *_) in alone["rules"].items() if transitions]
    assert len(fired) >= 12, f"every scenario's rule should fire, only {fired} did"
    assert outcome(replay(spec, eight_files)) == alone
    assert outcome(replay(spec, eight_files, workers=2)) == alone
    assert outcome(replay(spec, eight_files, scheduler=local_cluster)) == alone


def test_progress_counts_files_and_bytes_across_workers(spec: Spec, eight_files: list[str], local_cluster: str) -> None:
    done: list[str] = []
    shares: list[float] = []
    Engine(spec).load(eight_files, scheduler=local_cluster, on_file=done.append, on_progress=shares.append)
    assert sorted(done) == sorted(eight_files)
    assert shares == sorted(shares)
    assert shares[-1] == 1.0
    assert len(shares) >= 4, "each batch done moves the share of bytes read"


def test_splunk_semantics_agree_over_splits_too(spec: Spec, one_file: list[str], eight_files: list[str]) -> None:
    alone = outcome(replay(spec, one_file, semantics="splunk"))
    assert any(r[4] for r in alone["rules"].values()), "a warning search should notify"
    assert outcome(replay(spec, eight_files, semantics="splunk", workers=2)) == alone


def test_replay_workers_prints_what_one_process_prints(one_file: list[str], eight_files: list[str]) -> None:
    code, alone, errors = cli_run("replay", *one_file, "--spec", str(MONITORS), "-o", "json")
    assert code == 0, errors
    code, spread, errors = cli_run("replay", *eight_files, "--spec", str(MONITORS), "--workers", "2", "-o", "json")
    assert code == 0, errors
    answers = [json.loads(spread), json.loads(alone)]
    examples = [answer.pop("bad_line_examples") for answer in answers]  # file:line, of other files
    assert [len(e) for e in examples] == [len(BAD_LINES)] * 2
    assert answers[0] == answers[1]


def test_replay_threads_sets_each_processs_duckdb_threads(
    spec: Spec, one_file: list[str], eight_files: list[str]
) -> None:
    """--threads N: each reading process's DuckDB runs on N threads (one worker a core, as on a Dask
    worker with one thread), and the answer does not change."""
    from extalerts.engine import scan

    engine = Engine(spec, threads=1)
    assert engine.db.execute("SELECT current_setting('threads')").fetchone() == (1,)
    assert engine._scan_job(strict=False).threads == 1
    assert scan._scanner_db("1GB", 1).execute("SELECT current_setting('threads')").fetchone() == (1,)
    code, alone, errors = cli_run("replay", *one_file, "--spec", str(MONITORS), "-o", "json")
    assert code == 0, errors
    code, pinned, errors = cli_run(
        "replay", *eight_files, "--spec", str(MONITORS), "--workers", "2", "--threads", "1", "-o", "json"
    )
    assert code == 0, errors
    answers = [json.loads(pinned), json.loads(alone)]
    for answer in answers:
        answer.pop("bad_line_examples")  # file:line, of other files
    assert answers[0] == answers[1]
    code, _, errors = cli_run("replay", *one_file, "--threads", "0")
    assert code != 0
    assert "--threads" in errors


@pytest.mark.parametrize("semantics", ["datadog", "splunk"])
def test_any_random_split_merges_to_the_same_answer(
    spec: Spec,
    archive: list[str],
    one_file: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    semantics: Semantics,
) -> None:
    """Lines dealt at random over 2 to 7 files (every minute and group straddles files), read in
    batches of random size: counts, sums, minima and maxima, histograms and sets merge exactly."""
    import extalerts.engine.scan

    alone = outcome(replay(spec, one_file, semantics=semantics))
    rng = random.Random(18)
    for trial in range(3):
        count = rng.randint(2, 7)
        parts: list[list[str]] = [[] for _ in range(count)]
        for line in archive:
            parts[rng.randrange(count)].append(line)
        files = write_files(tmp_path / str(trial), parts, gzipped=rng.sample(range(count), 1))
        monkeypatch.setattr(extalerts.engine.scan, "BATCH_FILES", rng.randint(1, count))
        assert outcome(replay(spec, files, semantics=semantics)) == alone, f"trial {trial}: {count} files"


def test_percentiles_keep_a_histogram_per_minute_not_every_value(tmp_path: Path) -> None:
    """600 events with 3 latencies over 2 minutes keep 6 values with their counts, and the percentile
    is what every value gives."""
    spec = spec_with(tmp_path, MEASURE)
    events = [event(k / 300, WallTimeMs=(100, 400, 1000)[k % 3]) for k in range(600)]
    engine = Engine(spec, threads=1)
    engine.load_events(events)
    assert engine.kept_values() == 6
    (result,) = engine.evaluate().rules.values()
    # p90 of 1/3 each of 100, 400 and 1000 is 1000.
    assert {value for series in result.series.values() for _, value in series} == {1000.0}


def flaky_reading(monkeypatch: pytest.MonkeyPatch, failing: str, tmp_path: Path, *, times: int) -> list[int]:
    """Reading ``failing`` raises OSError its first ``times`` times (a lost connection); the calls made."""
    original = Scan._read_batch
    calls: list[int] = []

    def read_batch(self: Scan, files: Sequence[str], strict: bool, on_progress: Any = None) -> None:
        if failing in files:
            calls.append(len(files))
            if len(calls) <= times:
                raise OSError(f"connection reset reading {failing}")
        original(self, files, strict, on_progress)

    monkeypatch.setattr(Scan, "_read_batch", read_batch)
    return calls


def test_a_file_failing_once_on_a_worker_is_read_again(
    spec: Spec,
    one_file: list[str],
    eight_files: list[str],
    local_cluster: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    alone = outcome(replay(spec, one_file))
    calls = flaky_reading(monkeypatch, eight_files[3], tmp_path, times=1)
    assert outcome(replay(spec, eight_files, scheduler=local_cluster)) == alone
    assert len(calls) == 2


def test_a_file_failing_every_time_stops_the_run_naming_it(
    spec: Spec, eight_files: list[str], local_cluster: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = flaky_reading(monkeypatch, eight_files[5], tmp_path, times=99)
    with pytest.raises(EngineError) as error:
        replay(spec, eight_files, scheduler=local_cluster)
    message = str(error.value)
    assert message.startswith(f"{eight_files[5]}: could not be read (3 attempts; last: OSError: connection reset")
    assert "the replay stops rather than answer without it" in message
    assert len(calls) == 3


def merged_outcome(engine: Engine, merged: Sequence[tuple[Any, Any]], files: list[str]) -> dict[str, Any]:
    """The outcome of the map steps ``merged`` (batch, partial), after checking each file was read once."""
    assert sorted(f for batch, _ in merged for f in batch.files) == sorted(files)
    for _, partial in merged:
        engine._merge_aggregates(partial)
    engine._merge_reports([p for _, p in merged], files)
    engine._set_aside_time_outliers()
    return outcome(engine.evaluate())


def test_a_batch_failing_is_read_again_file_by_file(
    spec: Spec, one_file: list[str], eight_files: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through local processes the batches hold several files: the batch holding the failing file is
    read again one file at a time, so that a failure names its file. (In this process: a batch failing
    raises as it always did; here the pool's loop is driven with an in-process stand-in.)"""
    import extalerts.engine.parallel as parallel

    class InProcess(parallel._Pool):
        def submit(self, job: Any, files: list[str]) -> Any:
            from concurrent.futures import Future

            future: Future[Any] = Future()
            try:
                future.set_result(parallel.scan.scan_batch(job, files))
            except Exception as exc:
                future.set_exception(exc)
            return future

        def wait_any(self, futures: list[Any]) -> list[Any]:
            return futures[:1]

        def close(self, running: list[Any]) -> None:
            pass

    alone = outcome(replay(spec, one_file))
    calls = flaky_reading(monkeypatch, eight_files[1], tmp_path, times=1)
    engine = Engine(spec)
    batches = parallel.batches([(f, 1) for f in eight_files], workers=1)
    assert [len(b.files) for b in batches] == [8]
    merged = list(parallel._run(engine._scan_job(strict=False), batches, InProcess()))
    assert calls == [8, 1]  # the batch of 8, then the failing file alone
    assert merged_outcome(engine, merged, eight_files) == alone


class ThreadPool(_Pool):
    """A pool of one thread standing in for a process: it records each batch it reads in ``order``,
    and the most batches it read at once."""

    size = 1

    def __init__(self, order: list[tuple[str, list[str]]], delay: float = 0.0) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.executor = ThreadPoolExecutor(self.size)
        self.order, self.delay = order, delay
        self.reading = 0
        self.most = 0
        self.lock = threading.Lock()
        self.read_with = scan.scan_batch

    def read(self, job: Any, files: list[str]) -> Any:
        import time

        with self.lock:
            self.reading += 1
            self.most = max(self.most, self.reading)
            self.order.append(("pool", files))
        try:
            time.sleep(self.delay)
            return self.read_with(job, files)
        finally:
            with self.lock:
                self.reading -= 1

    def submit(self, job: Any, files: list[str]) -> Any:
        return self.executor.submit(self.read, job, files)

    def close(self, running: list[Any]) -> None:
        self.executor.shutdown(wait=True)


def test_with_local_workers_this_process_reads_batches_too(
    spec: Spec, one_file: list[str], eight_files: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--workers N is this process and N - 1 others: it reads from the start (a spawned process
    takes a while to start), each process of the pool reads one batch at a time and is given the next
    as it finishes, every batch is read once, and a batch failing here is read again like one
    failing there. (The pool here is a thread standing in for a process.)"""
    import extalerts.engine.parallel as parallel

    order: list[tuple[str, list[str]]] = []
    scan_batch = parallel.scan.scan_batch

    def here(job: Any, files: Sequence[str], on_progress: Any = None) -> Any:
        order.append(("here", list(files)))
        return scan_batch(job, files, on_progress)

    alone = outcome(replay(spec, one_file))
    engine = Engine(spec)
    pool = ThreadPool(order)
    batches = [parallel.Batch([f], [1]) for f in eight_files]
    # The pool is given the first batch; this process takes the second at once, which fails once.
    calls = flaky_reading(monkeypatch, eight_files[1], tmp_path, times=1)
    monkeypatch.setattr(parallel.scan, "scan_batch", here)
    merged = list(parallel._run_here_too(engine._scan_job(strict=False), batches, pool))
    monkeypatch.setattr(parallel.scan, "scan_batch", scan_batch)
    assert next(files for reader, files in order if reader == "here") == [eight_files[1]]
    assert len(calls) == 2, "failing here, it is read again"
    assert pool.most == 1, "one batch at a time per process of the pool"
    readers = [reader for reader, _ in order]
    assert readers.count("pool") >= 1, readers
    assert readers.count("here") >= 2, readers
    assert merged_outcome(engine, merged, eight_files) == alone


def test_an_error_here_stops_the_pool_quietly(
    spec: Spec, eight_files: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An error reading here (a bad line under --strict) ends the run with that error; the pool
    finishes the batch it reads and is given no other (none would be read, and giving one to a pool
    being shut down fails in its thread)."""
    import extalerts.engine.parallel as parallel

    order: list[tuple[str, list[str]]] = []
    pool = ThreadPool(order, delay=0.3)

    def failing(job: Any, files: Sequence[str], on_progress: Any = None) -> Any:
        raise EngineError(f"{files[0]}:2: not a Workers Trace Event (--strict stops at the first bad line)")

    monkeypatch.setattr(parallel.scan, "scan_batch", failing)
    batches = [parallel.Batch([f], [1]) for f in eight_files]
    with caplog.at_level("ERROR", logger="concurrent.futures"), pytest.raises(EngineError, match="--strict stops"):
        list(parallel._run_here_too(Engine(spec)._scan_job(strict=True), batches, pool))
    assert order == [("pool", [eight_files[0]])]
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_scheduler_without_dask_names_the_extra(
    spec: Spec, one_file: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(EngineError, match=r"--scheduler needs Dask distributed: pip install 'extalerts\[dask\]'"):
        replay(spec, one_file, scheduler="tcp://127.0.0.1:8786")


def test_workers_and_scheduler_are_one_or_the_other(one_file: list[str]) -> None:
    code, _, errors = cli_run("replay", *one_file, "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786")
    assert code == 2
    assert "choose --workers (local processes) or --scheduler (a Dask cluster)" in errors
