"""Plan and apply, shared by every provider: normalise-then-compare, safety guards, ordered and
bounded-concurrency apply with progress, and a summary of what happened.
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extalerts.errors import ExtalertsError
from extalerts.providers.base import Action, ApplyResult, Change, FieldChange, Plan, Provider, Resource
from extalerts.wording import plural

DEFAULT_MAX_DELETE_SHARE = 0.25
DEFAULT_CONCURRENCY = 8


class SafetyError(ExtalertsError):
    """A guard refused to apply the plan; nothing was written."""


class ValidationFailedError(ExtalertsError):
    """The provider rejected one or more changes at validation; nothing was written."""

    def __init__(self, problems: list[tuple[Change, str]]) -> None:
        self.problems = problems
        lines = [f"{change.kind} {change.key}: {problem}" for change, problem in problems]
        super().__init__(
            f"{plural(len(problems), 'change')} failed validation; nothing was written:\n" + "\n".join(lines)
        )


# --------------------------------------------------------------------------------------------- diff


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists and scalars are leaves."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def field_changes(live: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    before, after = flatten(live), flatten(desired)
    changes = []
    for path in sorted(set(before) | set(after)):
        if before.get(path, _MISSING) != after.get(path, _MISSING):
            changes.append(FieldChange(path, before.get(path, _MISSING), after.get(path, _MISSING)))
    return tuple(changes)


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING: Any = _Missing()


def is_missing(value: Any) -> bool:
    return value is _MISSING


def compute_plan(
    provider: Provider,
    desired: Iterable[Resource],
    live: Iterable[Resource],
    *,
    prune: bool,
) -> Plan:
    """Compare desired with live resources by ``(kind, key)``. Live resources the spec no longer has
    become deletes only with ``prune``; otherwise they are reported as left alone. A key the spec has
    that is live more than once (two pushes raced) keeps one object, the one that matches or else
    the oldest, and the others become deletes, with or without ``prune``."""
    desired = list(desired)
    wanted = {(resource.kind, resource.key): resource for resource in desired}
    live_by_key: dict[tuple[str, str], list[Resource]] = {}
    for resource in live:
        live_by_key.setdefault((resource.kind, resource.key), []).append(resource)
    duplicates: list[Resource] = []
    extras: list[Resource] = []
    for identity, found in live_by_key.items():
        if len(found) < 2:
            continue
        target = wanted.get(identity)
        if target is None:
            extras.extend(found[1:])  # not in the spec at all: pruned with the first, or left alone
            continue
        goal = provider.normalise(target)
        found.sort(key=lambda r: (provider.normalise(r) != goal, _id_order(r.live_id)))
        duplicates.extend(found[1:])
    changes: list[Change] = [
        Change(Action.DELETE, r.kind, r.key, None, r, phase=r.phase, duplicate=True) for r in duplicates
    ]
    seen: set[tuple[str, str]] = set()
    for resource in desired:
        identity = (resource.kind, resource.key)
        seen.add(identity)
        current = live_by_key[identity][0] if identity in live_by_key else None
        if current is None:
            changes.append(Change(Action.CREATE, resource.kind, resource.key, resource, None, phase=resource.phase))
            continue
        diff = field_changes(provider.normalise(current), provider.normalise(resource))
        action = Action.UPDATE if diff else Action.UNCHANGED
        changes.append(Change(action, resource.kind, resource.key, resource, current, diff, resource.phase))
    skipped: list[str] = []
    orphans = [found[0] for identity, found in live_by_key.items() if identity not in seen] + extras
    for resource in orphans:
        if prune:
            changes.append(Change(Action.DELETE, resource.kind, resource.key, None, resource, phase=resource.phase))
        else:
            skipped.append(
                f"{resource.kind} {resource.key} (id {resource.live_id}) is not in the spec; --prune deletes it"
            )
    counts: dict[str, int] = {}
    for (kind, _), found in live_by_key.items():
        counts[kind] = counts.get(kind, 0) + len(found)
    order = {Action.DELETE: 0, Action.CREATE: 1, Action.UPDATE: 2, Action.UNCHANGED: 3}
    changes.sort(key=lambda c: (c.phase, c.kind, c.key, order[c.action], c.live_id or ""))
    return Plan(provider.name, tuple(changes), counts, tuple(skipped))


def _id_order(live_id: str | None) -> tuple[int, str]:
    """Provider ids in creation order where they are numbers (Datadog's), else as text."""
    text = live_id or ""
    return (int(text), "") if text.isdigit() else (2**63, text)


def duplicate_notes(plan: Plan) -> list[str]:
    """One line per key that is live more than once: '2 live monitors for rule X'."""
    extra: dict[tuple[str, str], list[str]] = {}
    for change in plan.of(Action.DELETE):
        if change.duplicate:
            extra.setdefault((change.kind, change.key), []).append(change.live_id or "?")
    notes = []
    for (kind, key), ids in sorted(extra.items()):
        named = f"rule {key}" if kind == "monitor" else key
        notes.append(
            f"{len(ids) + 1} live {kind}s for {named} (concurrent pushes?); the push deletes the extra "
            f"{'ones' if len(ids) > 1 else 'one'} (id {', '.join(ids)})"
        )
    return notes


# --------------------------------------------------------------------------------------------- guards


@dataclass(frozen=True)
class Guards:
    """What a push may do. Defaults are the safe ones."""

    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE
    allow_mass_delete: bool = False
    #: Managed objects the last successful push left, per kind (from the state file), if known.
    last_known: Mapping[str, int] | None = None


def check_guards(plan: Plan, guards: Guards) -> None:
    """Raise :class:`SafetyError` when the plan looks like the live listing was wrong, or deletes too much."""
    if guards.allow_mass_delete:
        return
    last = guards.last_known or {}
    for kind, expected in sorted(last.items()):
        found = plan.live_counts.get(kind, 0)
        if expected and found < expected:
            raise SafetyError(
                f"{plan.provider} listed {plural(found, 'managed ' + kind)} but the last push left {expected}; "
                "refusing to apply, since creating or deleting on a short listing duplicates or loses alerts. "
                "If they were removed on purpose, run again with --allow-mass-delete"
            )
    # The share is taken over all managed objects: a kind with one object (the pipeline) would
    # otherwise trip the guard on its own.
    # Extra copies of a key the spec keeps are not counted: deleting them loses no alert.
    going = len([change for change in plan.of(Action.DELETE) if not change.duplicate])
    total = sum(plan.live_counts.values())
    if going and going / total > guards.max_delete_share:
        raise SafetyError(
            f"the plan deletes {going} of {total} managed objects ({going / total:.0%}), more than "
            f"{guards.max_delete_share:.0%}; check the spec, then run again with --allow-mass-delete"
        )


# --------------------------------------------------------------------------------------------- state


class StateFile:
    """Managed-object counts per provider after the last successful push (for the listing guard)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, provider: str, target: str | None = None) -> dict[str, int] | None:
        """The counts for ``provider`` at ``target``. An entry written before targets were recorded
        (keyed by the provider alone) is not read: nothing says which account it counted, and
        reading it for the wrong one would trip or disarm the guard."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ExtalertsError(f"{self.path}: unreadable state file ({exc}); delete it to start over") from exc
        entry = data.get(_state_key(provider, target)) or {}
        counts = entry.get("managed")
        return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else None

    def write(self, provider: str, counts: Mapping[str, int], target: str | None = None) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            data = {}
        data[_state_key(provider, target)] = {"managed": dict(sorted(counts.items()))}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        temporary.replace(self.path)


def _state_key(provider: str, target: str | None) -> str:
    return provider if target is None else f"{provider} {target}"


# --------------------------------------------------------------------------------------------- apply


def apply_plan(
    plan: Plan,
    provider: Provider,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[Change, str | None], None] | None = None,
) -> ApplyResult:
    """Validate every create/update with the provider, then apply phase by phase.

    Creates and updates run in ascending phase (a log pipeline and metrics before the monitors that
    use them), deletes in descending phase after them. Within a phase, changes run concurrently. A
    failed phase stops later phases, since they may depend on it; what was not attempted is reported.
    """
    writes = plan.of(Action.CREATE, Action.UPDATE)
    problems = provider.validate(writes)
    if problems:
        raise ValidationFailedError(problems)
    result = ApplyResult()
    lock = threading.Lock()
    phases: list[list[Change]] = []
    for phase in sorted({c.phase for c in writes}):
        phases.append([c for c in writes if c.phase == phase])
    deletes = plan.of(Action.DELETE)
    for phase in sorted({c.phase for c in deletes}, reverse=True):
        phases.append([c for c in deletes if c.phase == phase])
    for index, batch in enumerate(phases):
        failed_before = len(result.failed)
        pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        try:
            futures = {pool.submit(provider.apply_change, change): change for change in batch}
            for future in as_completed(futures):
                change = futures[future]
                error = future.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error  # an interrupt: stop at once (see below)
                with lock:
                    if error is None:
                        result.applied.append(change)
                    else:
                        result.failed.append((change, _describe(error)))
                if on_progress is not None:
                    on_progress(change, None if error is None else _describe(error))
        except BaseException:
            # Ctrl-C or a crash: start nothing new, let requests in flight finish (they are bounded by
            # the client's timeout), and leave the rest to the next run, which plans from live state.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if len(result.failed) > failed_before:
            result.not_attempted.extend(c for later in phases[index + 1 :] for c in later)
            break
    return result


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, ExtalertsError) else f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------------------------- output


def _show(value: Any) -> str:
    if is_missing(value):
        return "(absent)"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def render_field_diff(change: FieldChange) -> list[str]:
    """Unified-diff lines for one field; multi-line text diffs line by line."""
    before, after = change.before, change.after
    if isinstance(before, str) and isinstance(after, str) and ("\n" in before or "\n" in after):
        lines = [f"  {change.path}:"]
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1):
            if line.startswith(("---", "+++")):
                continue
            lines.append(f"    {line}")
        return lines
    return [f"  {change.path}:", f"    - {_show(before)}", f"    + {_show(after)}"]


def plan_to_json(plan: Plan) -> dict[str, Any]:
    def fields(change: Change) -> list[dict[str, Any]]:
        return [
            {
                "path": f.path,
                "before": None if is_missing(f.before) else f.before,
                "after": None if is_missing(f.after) else f.after,
                "before_absent": is_missing(f.before),
                "after_absent": is_missing(f.after),
            }
            for f in change.fields
        ]

    return {
        "provider": plan.provider,
        "has_changes": plan.has_changes,
        "counts": plan.counts(),
        "changes": [
            {"action": c.action.value, "kind": c.kind, "key": c.key, "id": c.live_id, "fields": fields(c)}
            for c in plan.changes
        ],
        "left_alone": list(plan.skipped),
        "notes": list(plan.notes),
        "duplicates": duplicate_notes(plan),
    }
