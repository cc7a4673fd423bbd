"""Push and plan against the local provider emulators with added latency, as `make bench` runs them.

For each provider, a push creating every alert of N generated rules runs twice on fresh emulators:
with extalerts' default concurrency, and one request at a time (the sequential baseline). A
no-change plan then reads everything back. API calls are counted by the emulator and compared with
the ideal: one call per page to list, and per change one validate (Datadog monitors) and one write
(Splunk: plus one ACL call for a new saved search, one look-up of the app per listing, and one of the
calling user per push that creates).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from extalerts.emulators.base import Faults
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.plan import DEFAULT_CONCURRENCY, apply_plan, compute_plan
from extalerts.providers import datadog, splunk
from extalerts.providers.base import Action, Change, Provider
from extalerts.spec import load_spec
from generate import write_spec

SPEEDUP_GOAL = 4.0
API_KEY, APP_KEY, TOKEN = "bench-api-key", "bench-app-key", "bench-splunk-token"


class Emulator(Protocol):
    calls: Any

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """How to stand up one provider against its emulator, and what its ideal call counts are."""

    name: str
    start: Callable[[float], Emulator]
    connect: Callable[[Emulator, int], Provider]
    #: Ideal calls to apply these changes (listing excluded).
    ideal_writes: Callable[[list[Change]], int]
    #: Ideal calls to list this many managed objects.
    ideal_listing: Callable[[int], int]


def _datadog_start(latency: float) -> Emulator:
    return DatadogEmulator(API_KEY, APP_KEY, Faults(latency=latency)).start()


def _datadog_connect(emulator: Any, concurrency: int) -> Provider:
    api = datadog.DatadogApi(datadog.DatadogSettings(emulator.url, API_KEY, APP_KEY))
    return datadog.DatadogProvider(api, concurrency=concurrency)


def _splunk_start(latency: float) -> Emulator:
    # The generated spec's PagerDuty target reads its integration key from here, as a real push does.
    os.environ.setdefault("BENCH_PD_KEY", "bench-pagerduty-integration-key")
    return SplunkEmulator(token=TOKEN, apps=["extalerts_bench"], faults=Faults(latency=latency)).start()


def _splunk_connect(emulator: Any, concurrency: int) -> Provider:
    return splunk.SplunkProvider(
        splunk.SplunkApi(splunk.SplunkSettings("http", "127.0.0.1", emulator.port, token=TOKEN))
    )


def _creates(changes: list[Change]) -> int:
    return sum(1 for c in changes if c.action is Action.CREATE)


TARGETS = {
    "datadog": Target(
        "datadog",
        _datadog_start,
        _datadog_connect,
        # one validate per monitor, one write per object
        lambda changes: len(changes) + sum(1 for c in changes if c.kind == datadog.MONITOR),
        # pipelines, metrics, and the monitor pages (a full last page needs one more, empty, page)
        lambda objects: 2 + objects // datadog.PAGE_SIZE + 1,
    ),
    "splunk": Target(
        "splunk",
        _splunk_start,
        _splunk_connect,
        # one write per saved search, one ACL call for each new one, and the calling user once
        lambda changes: len(changes) + _creates(changes) + min(1, _creates(changes)),
        # the app's look-up, then the pages
        lambda objects: 1 + objects // splunk.PAGE_SIZE + 1,
    ),
}


@dataclass(frozen=True)
class PushRun:
    concurrency: int
    seconds: float
    calls: int
    ideal_calls: int
    changes: int


@dataclass(frozen=True)
class PlanRun:
    seconds: float
    calls: int
    ideal_calls: int
    unchanged: int


@dataclass(frozen=True)
class PushBench:
    provider: str
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


def _push(target: Target, spec_dir: Path, latency: float, concurrency: int) -> tuple[PushRun, Emulator, Provider]:
    emulator = target.start(latency)
    provider = target.connect(emulator, concurrency)
    desired = provider.desired(load_spec([spec_dir]))
    started = time.perf_counter()
    plan = compute_plan(provider, desired, provider.fetch(), prune=False)
    result = apply_plan(plan, provider, concurrency=concurrency)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"bench push to {target.name} failed: {result.failed[:3]}")
    changes = plan.of(Action.CREATE, Action.UPDATE)
    run = PushRun(
        concurrency=concurrency,
        seconds=seconds,
        calls=sum(emulator.calls.values()),
        ideal_calls=target.ideal_listing(0) + target.ideal_writes(changes),
        changes=len(changes),
    )
    return run, emulator, provider


def bench(provider: str, rules: int, latency: float = 0.05) -> PushBench:
    target = TARGETS[provider]
    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = Path(tmp)
        write_spec(spec_dir, rules)
        sequential, emulator, _ = _push(target, spec_dir, latency, concurrency=1)
        emulator.stop()
        concurrent, emulator, live = _push(target, spec_dir, latency, concurrency=DEFAULT_CONCURRENCY)
        try:
            desired = live.desired(load_spec([spec_dir]))
            before = sum(emulator.calls.values())
            started = time.perf_counter()
            plan = compute_plan(live, desired, live.fetch(), prune=True)
            seconds = time.perf_counter() - started
            if plan.has_changes:
                raise SystemExit(f"bench plan after the {provider} push is not empty: {plan.counts()}")
            unchanged = len(plan.of(Action.UNCHANGED))
            plan_run = PlanRun(
                seconds=seconds,
                calls=sum(emulator.calls.values()) - before,
                ideal_calls=target.ideal_listing(unchanged),
                unchanged=unchanged,
            )
        finally:
            emulator.stop()
    return PushBench(provider, rules, latency, concurrent, sequential, plan_run)
