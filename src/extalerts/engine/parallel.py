"""Running the map step over batches of files: in this process, in local worker processes
(``--workers``), or on a Dask distributed cluster (``--scheduler``), each batch read with nothing
shared. A batch that fails for another reason than its input (a worker lost, a read interrupted) is
read again, alone per file once it held several; a file failing every time stops the run with an
error naming it, rather than give an answer without it."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from extalerts.engine import scan
from extalerts.engine.results import EngineError
from extalerts.engine.scan import Partial, ScanJob

#: Times a batch is read again after failing for another reason than its input.
RETRIES = 2
#: Batches per worker when reading in parallel: small enough to even out the workers' shares.
BATCHES_PER_WORKER = 4
DASK_EXTRA = "pip install 'extalerts[dask]'"


@dataclass
class Batch:
    files: list[str]
    sizes: list[int]
    attempts: int = 0

    @property
    def size(self) -> int:
        return sum(self.sizes)


def batches(files: Sequence[tuple[str, int]], workers: int = 1) -> list[Batch]:
    """Consecutive batches of files (with their sizes): those of a single-process read, each cut
    into :data:`BATCHES_PER_WORKER` per worker when in parallel, to even out the workers' shares."""
    per_batch = scan.BATCH_FILES if workers <= 1 else max(1, -(-len(files) // (workers * BATCHES_PER_WORKER)))
    found = []
    for batch in scan._batches(files):
        for start in range(0, len(batch), per_batch):
            part = batch[start : start + per_batch]
            found.append(Batch([file for file, _ in part], [size for _, size in part]))
    return found


def run_map_steps(
    job: ScanJob,
    files: Sequence[tuple[str, int]],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    on_progress: Callable[[Batch, float], None] | None = None,
) -> Iterator[tuple[Batch, Partial]]:
    """Each batch of ``files`` (with their sizes) and its partial aggregates, as they are read (in no
    particular order when in parallel). ``on_progress`` hears the share read of a batch being read
    in this process."""
    if scheduler is not None:
        dask = _DaskPool(scheduler)
        yield from _run(job, batches(files, dask.workers()), dask)
    elif workers is not None and workers > 1:
        # This process is one of the workers: it reads from the start, while the others start
        # (a spawned process takes about 0.3 s to import what it needs). Each process's DuckDB
        # shares the machine's cores with the others.
        shared = replace(job, threads=job.threads or max(1, (os.cpu_count() or 1) // workers))
        yield from _run_here_too(shared, batches(files, workers), _ProcessPool(workers - 1))
    else:
        for batch in batches(files):
            within = None if on_progress is None else (lambda share, batch=batch: on_progress(batch, share))
            yield batch, scan.scan_batch(job, batch.files, within)


def _run(job: ScanJob, batches: Sequence[Batch], pool: _Pool) -> Iterator[tuple[Batch, Partial]]:
    queue = deque(batches)
    running: dict[Any, Batch] = {}
    try:
        while queue or running:
            while queue:
                batch = queue.popleft()
                running[pool.submit(job, batch.files)] = batch
            for future in pool.wait_any(list(running)):
                batch = running.pop(future)
                partial = _answer(future, batch, queue, pool)
                if partial is not None:
                    yield batch, partial
    finally:
        pool.close(list(running))


def _run_here_too(job: ScanJob, batches: Sequence[Batch], pool: _Pool) -> Iterator[tuple[Batch, Partial]]:
    """Each batch read by the pool's processes or by this one, whichever is free first: a process of
    the pool is given its next batch as it finishes one (from the pool's thread), so that none
    waits for this process to finish its own; nothing waits in the pool, so the readers finish
    together."""
    import queue as queues
    import threading

    todo = deque(batches)
    lock = threading.RLock()  # a callback may run at once, in the thread adding it
    finished: queues.SimpleQueue[Any] = queues.SimpleQueue()
    in_pool: dict[Any, Batch] = {}
    closing = threading.Event()  # no more batches for the pool once this process stops (an error)

    def feed(_: Any = None) -> None:
        with lock:
            while todo and not closing.is_set() and sum(not future.done() for future in in_pool) < pool.size:
                batch = todo.popleft()
                future = pool.submit(job, batch.files)
                in_pool[future] = batch
                future.add_done_callback(finished.put)
                future.add_done_callback(feed)

    try:
        feed()
        while True:
            with lock:
                batch = todo.popleft() if todo else None
                waiting = bool(in_pool)
            if batch is not None:
                try:
                    read_here = scan.scan_batch(job, batch.files)
                except EngineError:
                    raise
                except Exception as exc:  # as from a worker: read again
                    with lock:
                        todo.extend(_again(batch, exc))
                    feed()
                    continue
                yield batch, read_here
                done = []
            elif waiting:
                done = [finished.get()]
            else:
                return
            while not finished.empty():
                done.append(finished.get())
            for future in done:
                with lock:
                    batch = in_pool.pop(future)
                    partial = _answer(future, batch, todo, pool)
                feed()
                if partial is not None:
                    yield batch, partial
    finally:
        closing.set()
        pool.close(list(in_pool))


def _answer(future: Any, batch: Batch, todo: deque[Batch], pool: _Pool) -> Partial | None:
    """A finished map step's partial, or None when it is to be read again (then queued in ``todo``)."""
    try:
        partial: Partial = future.result()
    except EngineError:
        raise  # the input itself (a bad line under --strict): reading again would not help
    except Exception as exc:  # a worker lost, a connection or read interrupted
        todo.extend(_again(batch, exc))
        pool.recover(exc)
        return None
    return partial


def _again(batch: Batch, error: BaseException) -> list[Batch]:
    """The batch to read again: alone per file once it held several, so that a failure names its file."""
    if batch.attempts >= RETRIES and len(batch.files) == 1:
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise EngineError(
            f"{batch.files[0]}: could not be read ({batch.attempts + 1} attempts; last: {reason}); the replay "
            "stops rather than answer without it (check that every worker can read it, then run again)"
        )
    if len(batch.files) > 1:
        return [Batch([file], [size], batch.attempts + 1) for file, size in zip(batch.files, batch.sizes, strict=True)]
    return [Batch(batch.files, batch.sizes, batch.attempts + 1)]


class _Pool:
    #: Batches read at once.
    size = 1

    def submit(self, job: ScanJob, files: list[str]) -> Any:
        raise NotImplementedError

    def wait_any(self, futures: list[Any]) -> list[Any]:
        raise NotImplementedError

    def recover(self, error: BaseException) -> None:
        """Make the pool usable again after ``error`` (a process pool is broken by a lost worker)."""

    def close(self, running: list[Any]) -> None:
        raise NotImplementedError


class _ProcessPool(_Pool):
    """Local worker processes (spawned: nothing of this process's DuckDB or threads is inherited)."""

    def __init__(self, processes: int) -> None:
        self.size = processes
        self.executor = self._start()

    def _start(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.size, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, job: ScanJob, files: list[str]) -> Any:
        return self.executor.submit(scan.scan_batch, job, files)

    def wait_any(self, futures: list[Any]) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        return list(wait(futures, return_when=FIRST_COMPLETED).done)

    def recover(self, error: BaseException) -> None:
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(error, BrokenProcessPool):
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = self._start()

    def close(self, running: list[Any]) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class _DaskPool(_Pool):
    """A Dask distributed cluster: each worker reads its files itself (s3:// straight from the bucket)."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise EngineError(f"--scheduler needs Dask distributed: {DASK_EXTRA}") from None
        try:
            self.client = Client(address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            hint = "check the address and port, and that the scheduler runs"
            raise EngineError(f"{address}: cannot reach the Dask scheduler ({exc}); {hint}") from None

    def workers(self) -> int:
        """The cluster's worker threads (at least 1: batches wait for a worker to join)."""
        return max(1, int(sum(self.client.nthreads().values())))

    def submit(self, job: ScanJob, files: list[str]) -> Any:
        return self.client.submit(scan.scan_batch, job, files, pure=False)

    def wait_any(self, futures: list[Any]) -> list[Any]:
        from distributed import wait

        return list(wait(futures, return_when="FIRST_COMPLETED").done)

    def close(self, running: list[Any]) -> None:
        if running:
            self.client.cancel(running)
        self.client.close()
