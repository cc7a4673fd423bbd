"""A self-contained HTML report of a replay: one chart per rule (inline SVG, no scripts, no network).

Each chart shows the rule's value over time per group, its critical and warning thresholds, and the
stretches of time it was firing, shaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from extalerts.engine import EngineResult, Group, RuleResult, Semantics, State
from extalerts.numbers import format_number
from extalerts.render.templates import Templates
from extalerts.spec.loader import ResolvedRule, Spec

if TYPE_CHECKING:
    from extalerts.verify.run import Verification

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 28
COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
MAX_GROUPS = len(COLOURS)


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    #: SVG path data: one stretch per run of evaluations with data, so a gap is not bridged.
    path: str


@dataclass(frozen=True)
class Band:
    x: float
    width: float
    label: str


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    signal: str
    fired: int
    lines: list[Line]
    bands: list[Band]
    thresholds: list[tuple[str, float, str, str]]  # label, y, colour, value text
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str, str]]  # x, label, text-anchor
    hidden_groups: int


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def _chart(
    rule_id: str,
    title: str,
    signal: str,
    outcome: RuleResult,
    thresholds: dict[str, float],
    span: tuple[int, int],
    shaded: Sequence[tuple[int, int, str]] | None = None,
) -> Rule:
    """One rule's chart. ``span``: the input's first and last event, the time axis of a rule that
    never evaluated, so every chart of a report shows the same stretch of time. ``shaded``: stretches
    (start, end, label) shaded instead of the alert intervals (verify's diverging minutes)."""
    points = [(t, v) for series in outcome.series.values() for t, v in series]
    times = [t for t, _ in points] or list(span)
    values = [v for _, v in points if v is not None] + list(thresholds.values()) + [0.0]
    t0 = min(times)
    t1 = max(max(times), t0 + 60_000)
    # Values below zero (a change rule's drop) are drawn too: the axis spans both signs when needed.
    low, high = min(values), max(values)
    v0 = low * 1.1 if low < 0 else 0.0
    v1 = high * 1.1 if high > 0 else 0.0
    if v1 == v0:
        v1 = v0 + 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: int) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v - v0) / (v1 - v0) * plot_h

    ranked = sorted(outcome.series.items(), key=lambda item: -max(((v or 0.0) for _, v in item[1]), default=0.0))
    lines = []
    for (group, series), colour in zip(ranked[:MAX_GROUPS], COLOURS, strict=False):
        steps, pen_down = [], False
        for t, v in series:
            if v is None:
                pen_down = False
                continue
            steps.append(f"{'L' if pen_down else 'M'}{x(t):.1f},{y(v):.1f}")
            pen_down = True
        lines.append(Line(_label(group), colour, " ".join(steps)))
    # An alert still open when the input ended is shaded up to the last evaluation, where it was seen.
    still_open_until = outcome.until_ms or span[1]
    bands = [
        Band(
            x(i.start_ms),
            max(x(i.end_ms or still_open_until) - x(i.start_ms), 1.5),
            f"{_label(i.group)} {_time(i.start_ms)}",
        )
        for i in outcome.intervals(State.ALERT)
    ]
    if shaded is not None:
        bands = [Band(x(start), max(x(end) - x(start), 1.5), label) for start, end, label in shaded]
    marks = [
        (name, y(value), colour, format_number(value))
        for name, colour in (("critical", "#d62728"), ("warning", "#ff7f0e"))
        if (value := thresholds.get(name)) is not None
    ]
    y_ticks = [(y(v0 + (v1 - v0) * k / 4), format_number(round(v0 + (v1 - v0) * k / 4, 2))) for k in range(5)]
    anchors = ("start", "middle", "middle", "middle", "end")  # keep the outer labels inside the chart
    x_ticks = [(x(t0 + (t1 - t0) * k // 4), _time(t0 + (t1 - t0) * k // 4), anchors[k]) for k in range(5)]
    return Rule(
        rule_id,
        title,
        signal,
        len(outcome.intervals()),
        lines,
        bands,
        marks,
        y_ticks,
        x_ticks,
        max(0, len(ranked) - MAX_GROUPS),
    )


def _label(group: Group) -> str:
    return ", ".join(f"{k}={v}" for k, v in group) or "all events"


def _thresholds(rule: ResolvedRule, semantics: Semantics = "datadog") -> dict[str, float]:
    thresholds: dict[str, float] = {}
    if rule.rule.thresholds is not None:
        thresholds["critical"] = rule.rule.thresholds.critical
        # A Workers Observability alert judges one threshold (the recipe's warning is another alert).
        if rule.rule.thresholds.warning is not None and semantics != "cloudflare":
            thresholds["warning"] = rule.rule.thresholds.warning
    else:
        thresholds["critical"] = 1.0
    return thresholds


def write_verify_report(spec: Spec, result: Verification, path: Path) -> None:
    """``extalerts verify --report``: per rule, the provider's and the expected series (each group
    drawn once per side), the minutes where they differ shaded."""
    charts = []
    span = (result.window.start_ms, result.window.end_ms)
    rules = {rule.id: rule for rule in spec.rules}
    for outcome in result.rules:
        rule = rules[outcome.rule_id]
        series: dict[Group, list[tuple[int, float | None]]] = {}
        for side, seen in (("provider", outcome.provider), ("expected", outcome.expected)):
            for group, by_minute in (seen.values if seen is not None else {}).items():
                series[(("side", side), *group)] = sorted(by_minute.items())
        diverging = [
            (at, at + 60_000, f"{_label(group)} {_time(at)}")
            for group, minutes in outcome.diverging.items()
            for at in minutes
        ]
        drawn = RuleResult(rule.id, series=series, until_ms=result.window.end_ms)
        chart = _chart(rule.id, rule.rule.title, outcome.verdict, drawn, _thresholds(rule), span, diverging)
        charts.append(chart)
    html = Templates().render(
        "report/verify.html.j2",
        charts=charts,
        result=result,
        causes={o.rule_id: o.causes for o in result.rules},
        first=_time(result.window.start_ms),
        last=_time(result.window.end_ms),
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        top=TOP,
        bottom=BOTTOM,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")


def write_report(spec: Spec, result: EngineResult, path: Path) -> None:
    charts = []
    span = (result.first_ms or 0, result.last_ms or 60_000)
    for rule in spec.rules:
        outcome = result.rules.get(rule.id)
        if outcome is None:
            continue
        thresholds = _thresholds(rule, result.semantics)
        charts.append(_chart(rule.id, rule.rule.title, rule.rule.signal.kind, outcome, thresholds, span))
    html = Templates().render(
        "report/replay.html.j2",
        charts=charts,
        result=result,
        first=_time(result.first_ms) if result.first_ms else "-",
        last=_time(result.last_ms) if result.last_ms else "-",
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        top=TOP,
        bottom=BOTTOM,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
