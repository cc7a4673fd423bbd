"""Datadog push and plan against the local emulator with added latency, as `make bench` runs them.

A push creating N monitors runs twice on fresh emulators: with extalerts' default concurrency, and
one request at a time (the sequential baseline). A no-change plan then reads the N managed monitors
back. API calls are counted by the emulator and compared with the ideal: one call per page to list,
one validate and one write per change to push.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from extalerts.emulators.datadog import DatadogEmulator, Faults
from extalerts.plan import DEFAULT_CONCURRENCY, apply_plan, compute_plan
from extalerts.providers.base import Action
from extalerts.providers.datadog import PAGE_SIZE, DatadogApi, DatadogProvider, DatadogSettings
from extalerts.spec import load_spec
from generate import write_spec

API_KEY = "bench-api-key"
APP_KEY = "bench-app-key"
SPEEDUP_GOAL = 4.0


@dataclass(frozen=True)
class PushRun:
    concurrency: int
    seconds: float
    calls: int
    ideal_calls: int
    changes: int
    monitors: int


@dataclass(frozen=True)
class PlanRun:
    seconds: float
    calls: int
    ideal_calls: int
    unchanged: int


@dataclass(frozen=True)
class PushBench:
    rules: int
    latency: float
    concurrent: PushRun
    sequential: PushRun
    plan: PlanRun

    @property
    def speedup(self) -> float:
        return self.sequential.seconds / self.concurrent.seconds

    @property
    def goal_met(self) -> bool:
        calls_ideal = self.concurrent.calls == self.concurrent.ideal_calls and self.plan.calls == self.plan.ideal_calls
        return calls_ideal and self.speedup >= SPEEDUP_GOAL


def _listing_calls(monitors: int) -> int:
    # pipelines, metrics, and one page per PAGE_SIZE monitors (a full last page needs one more, empty, page)
    return 2 + monitors // PAGE_SIZE + 1


def _push(spec_dir: Path, latency: float, concurrency: int) -> tuple[PushRun, DatadogEmulator, DatadogProvider]:
    emulator = DatadogEmulator(API_KEY, APP_KEY, Faults(latency=latency)).start()
    provider = DatadogProvider(DatadogApi(DatadogSettings(emulator.url, API_KEY, APP_KEY)), concurrency=concurrency)
    desired = provider.desired(load_spec([spec_dir]))
    started = time.perf_counter()
    plan = compute_plan(provider, desired, provider.fetch(), prune=False)
    result = apply_plan(plan, provider, concurrency=concurrency)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"bench push failed: {result.failed[:3]}")
    changes = plan.of(Action.CREATE, Action.UPDATE)
    validates = sum(1 for c in changes if c.kind == "monitor")
    monitors = sum(1 for c in changes if c.kind == "monitor")
    run = PushRun(
        concurrency=concurrency,
        seconds=seconds,
        calls=sum(emulator.calls.values()),
        ideal_calls=_listing_calls(0) + validates + len(changes),
        changes=len(changes),
        monitors=monitors,
    )
    return run, emulator, provider


def bench(rules: int, latency: float = 0.05) -> PushBench:
    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = Path(tmp)
        write_spec(spec_dir, rules)
        sequential, emulator, _ = _push(spec_dir, latency, concurrency=1)
        emulator.stop()
        concurrent, emulator, provider = _push(spec_dir, latency, concurrency=DEFAULT_CONCURRENCY)
        try:
            desired = provider.desired(load_spec([spec_dir]))
            before = sum(emulator.calls.values())
            started = time.perf_counter()
            plan = compute_plan(provider, desired, provider.fetch(), prune=True)
            seconds = time.perf_counter() - started
            if plan.has_changes:
                raise SystemExit(f"bench plan after push is not empty: {plan.counts()}")
            plan_run = PlanRun(
                seconds=seconds,
                calls=sum(emulator.calls.values()) - before,
                ideal_calls=_listing_calls(concurrent.monitors),
                unchanged=len(plan.of(Action.UNCHANGED)),
            )
        finally:
            emulator.stop()
    return PushBench(rules, latency, concurrent, sequential, plan_run)
