"""Concurrent pushes to Datadog: the push lock serialises them, and duplicates (from a race before
the lock, or an edit) show in `plan` and are removed by `push`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from extalerts.emulators.base import Faults
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.providers.datadog import LOCK_METRIC, DatadogPushLock, LockHeldError
from extalerts.render.datadog import RULE_TAG_PREFIX
from extalerts.spec import load_spec
from tests.test_datadog_push import API_KEY, APP_KEY, emulator, env, plan, provider_for, push

__all__ = ["emulator", "env"]  # fixtures, used by name


def monitors_per_rule(emulator: DatadogEmulator) -> Counter[str]:
    return Counter(
        tag[len(RULE_TAG_PREFIX) :]
        for monitor in emulator.monitors()
        for tag in monitor["tags"]
        if tag.startswith(RULE_TAG_PREFIX)
    )


def test_plan_shows_duplicates_and_push_removes_them_outside_the_delete_share(
    env: str, spec_dir: Path, emulator: DatadogEmulator
) -> None:
    assert push(env)[0] == 0
    for monitor in emulator.monitors()[:3]:
        emulator.add_monitor({k: v for k, v in monitor.items() if k != "id"})
    doubled = sorted(rule for rule, count in monitors_per_rule(emulator).items() if count == 2)
    assert len(doubled) == 3
    code, out, _ = plan(env)
    assert code == 2
    assert "0 to create, 0 to update, 3 to delete" in out
    for rule in doubled:
        assert f"drift: 2 live monitors for rule {rule} (concurrent pushes?); the push deletes the extra one" in out
    # 3 of 18 objects is over a 1% share: extra copies of a kept rule are outside the guard.
    code, out, err = push(env, "--max-delete-share", "0.01")
    assert code == 0, err
    assert set(monitors_per_rule(emulator).values()) == {1}
    assert plan(env)[0] == 0


def _push_process(url: str, cwd: Path) -> subprocess.Popen[str]:
    environment = {**os.environ, "DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "extalerts", "push", "monitors", "-p", "datadog", "--api-url", url, "--yes"],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("race", range(2))
def test_two_concurrent_pushes_leave_one_monitor_per_rule(
    env: str, spec_dir: Path, emulator: DatadogEmulator, race: int
) -> None:
    emulator.set_faults(Faults(latency=0.01 * (race + 1)))  # a remote API: time for the runs to interleave
    runs = [_push_process(env, spec_dir.parent) for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    counts = monitors_per_rule(emulator)
    assert len(counts) == len(load_spec([spec_dir]).rules)
    assert set(counts.values()) == {1}
    outputs = [out for out, _ in results]
    assert sum("nothing to do" in out for out in outputs) == 1  # the second found the first's work done
    assert plan(env)[0] == 0
    assert LOCK_METRIC not in emulator.state.metrics  # released


def test_a_held_lock_is_waited_for_then_refused_with_who_holds_it(emulator: DatadogEmulator) -> None:
    provider = provider_for(emulator)
    with DatadogPushLock(provider) as first:
        now, waits = [0.0], []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            now[0] += seconds

        second = DatadogPushLock(provider, wait_s=6, poll_s=2, clock=lambda: now[0], sleep=sleep)
        with pytest.raises(LockHeldError, match=rf"holds the push lock \({first.holder}; lease until .*waited 6 s"):
            second.acquire()
        assert waits == [2, 2, 2]  # looked again every poll until its wait ran out
    assert LOCK_METRIC not in emulator.state.metrics
    with DatadogPushLock(provider, wait_s=0):  # free again
        assert LOCK_METRIC in emulator.state.metrics


def test_an_expired_lease_is_taken_over(emulator: DatadogEmulator) -> None:
    provider = provider_for(emulator)
    DatadogPushLock(provider, lease_s=-1).acquire()  # a run that died holding the lock
    taker = DatadogPushLock(provider, wait_s=0)
    taker.acquire()
    lease = taker._read()
    assert lease is not None
    assert lease[0] == taker.holder
    taker.release()
    assert LOCK_METRIC not in emulator.state.metrics


def test_the_lock_is_no_managed_object(env: str, spec_dir: Path, emulator: DatadogEmulator) -> None:
    provider = provider_for(emulator)
    with DatadogPushLock(provider):
        assert all(resource.key != LOCK_METRIC for resource in provider.fetch())
        code, out, _ = plan(env, "--prune")
        assert code == 2
        assert LOCK_METRIC not in out
