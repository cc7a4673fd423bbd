"""The Cloudflare Workers Observability alert state machine, against hand-computed timelines."""

from __future__ import annotations

import pytest

from extalerts.observability_states import (
    AlertMachine,
    AlertState,
    Notification,
    StateChange,
    check_times,
    run_checks,
    run_groups,
)
from extalerts.observability_timings import Timings

MIN = 60_000
N, PF, F, PR = AlertState.NORMAL, AlertState.PENDING_FIRE, AlertState.FIRING, AlertState.PENDING_RESOLVE
FIRED, RESOLVED = Notification.FIRED, Notification.RESOLVED
Changes = list[tuple[int, AlertState, Notification | None]]


def timings(every: int = 1, fire_after: int = 0, resolve_after: int = 0) -> Timings:
    return Timings(every, 5, fire_after, resolve_after)


def run(failing_minutes: set[int], t: Timings, end_minute: int = 40) -> Changes:
    """(minute, state after, notification) at each change, checking minutes 0..end_minute as scheduled."""
    checks = [(at, at // MIN in failing_minutes) for at in check_times(0, end_minute * MIN, t)]
    return [(c.at_ms // MIN, c.after, c.notification) for c in run_checks(checks, t)]


def test_a_spike_shorter_than_fire_after_never_fires() -> None:
    # Fire after 5 minutes; failing checks at 10, 11, 12: 12 - 10 = 2 < 5. The passing check at 13
    # returns the alert to Normal without a notification.
    assert run({10, 11, 12}, timings(fire_after=5)) == [(10, PF, None), (13, N, None)]
    # Failing 10..14: the last failing check is 4 minutes after the first, still short of 5.
    assert run(set(range(10, 15)), timings(fire_after=5)) == [(10, PF, None), (15, N, None)]


def test_fires_at_the_first_check_that_has_failed_for_fire_after() -> None:
    # Failing from 10 through 20: 15 - 10 = 5 >= 5 fires at 15; passing again at 21 resolves at once.
    assert run(set(range(10, 21)), timings(fire_after=5)) == [(10, PF, None), (15, F, FIRED), (21, N, RESOLVED)]


def test_fire_after_zero_fires_on_the_first_failing_check() -> None:
    assert run({3}, timings()) == [(3, F, FIRED), (4, N, RESOLVED)]


def test_a_passing_check_restarts_the_fire_after_count() -> None:
    # Failing 10..13, passing at 14, failing 15..19: neither run lasts 5 minutes; 15..20 would.
    assert run({10, 11, 12, 13, *range(15, 20)}, timings(fire_after=5)) == [
        (10, PF, None),
        (14, N, None),
        (15, PF, None),
        (20, N, None),
    ]
    assert run({10, 11, 12, 13, *range(15, 21)}, timings(fire_after=5))[2:] == [
        (15, PF, None),
        (20, F, FIRED),
        (21, N, RESOLVED),
    ]


def test_flapping_within_resolve_after_never_resolves() -> None:
    # Fires at 0. Passing stretches 3-4, 6-8 and 10-12 are each shorter than 5 minutes (last passing
    # check minus first: 1, 2, 2): each failing check in Pending Resolve returns to Firing silently.
    # From 14 on it passes: 19 - 14 = 5 resolves at 19.
    failing = {0, 1, 2, 5, 9, 13}
    assert run(failing, timings(resolve_after=5)) == [
        (0, F, FIRED),
        (3, PR, None),
        (5, F, None),
        (6, PR, None),
        (9, F, None),
        (10, PR, None),
        (13, F, None),
        (14, PR, None),
        (19, N, RESOLVED),
    ]


def test_checks_every_five_minutes_skip_the_minutes_between() -> None:
    t = timings(every=5, fire_after=7)
    assert check_times(7 * MIN, 21 * MIN, t) == [10 * MIN, 15 * MIN, 20 * MIN]
    # A failing minute between two checks is never checked.
    assert run({3, 4, 6, 7, 8, 9}, t) == []
    # Failing 10..34: checks at 10 (Pending Fire), 15 (5 < 7), 20 (10 >= 7: Firing), 25, 30; the check
    # at 35 passes and, with resolve after 0, resolves.
    assert run(set(range(10, 35)), t) == [(10, PF, None), (20, F, FIRED), (35, N, RESOLVED)]


def test_each_group_runs_its_own_machine() -> None:
    t = timings(fire_after=2)
    checks = {
        "api": [(m * MIN, m in {1, 2, 3}) for m in range(6)],
        "web": [(m * MIN, m in {1, 2}) for m in range(6)],
    }
    changes = run_groups(checks, t)
    assert [(c.at_ms // MIN, c.after, c.notification) for c in changes["api"]] == [
        (1, PF, None),
        (3, F, FIRED),
        (4, N, RESOLVED),
    ]
    assert [(c.at_ms // MIN, c.after, c.notification) for c in changes["web"]] == [(1, PF, None), (3, N, None)]


def test_a_change_records_the_state_it_left() -> None:
    machine = AlertMachine(timings(resolve_after=1))
    assert machine.check(0, True) == StateChange(0, N, F, FIRED)
    assert machine.check(MIN, True) is None
    assert machine.check(2 * MIN, False) == StateChange(2 * MIN, F, PR, None)
    assert machine.state is PR


def test_checks_out_of_time_order_are_refused() -> None:
    machine = AlertMachine(timings())
    machine.check(MIN, False)
    with pytest.raises(ValueError, match="time order"):
        machine.check(MIN, True)
