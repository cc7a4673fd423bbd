"""The expected side of ``extalerts verify``: the engine replays the same window of the Logpush
archive with the provider's semantics, giving each rule's value per evaluation minute and group, and
the events its filter matched in the minutes those evaluations read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from extalerts.engine import MINUTE_MS, Engine, Semantics, expand_sources
from extalerts.filter.ast import Expr
from extalerts.spec.loader import Spec
from extalerts.verify.compare import matched_in, reads_from_ms
from extalerts.verify.model import SideSeries, Window


@dataclass
class ExpectedSide:
    """Each rule's series from the archive, and what the reading worked around."""

    series: dict[str, SideSeries]
    files: list[str]
    warnings: list[str] = field(default_factory=list)


def expected_series(
    spec: Spec,
    rule_ids: Sequence[str],
    window: Window,
    sources: Sequence[str],
    *,
    semantics: Semantics = "datadog",
    shipped: Expr | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> ExpectedSide:
    """Replay ``sources`` (files, folders, globs, ``s3://`` prefixes) for the rules over ``window``;
    ``shipped``: the filter of the Logpush jobs feeding the provider (the rules see what they ship)."""
    files = expand_sources(sources)
    engine = Engine(spec, rules=rule_ids, semantics=semantics, shipped=shipped)
    # The archive stands for everything the window reads: where it starts later, its missing minutes
    # are empty, as they are on the provider's side, not unknown (a change's baseline).
    engine.data_start_ms = min((reads_from_ms(rule, window) for rule in engine.rules), default=None)
    engine.load_files(files, on_progress=on_progress)
    result = engine.evaluate(start_ms=window.start_ms, end_ms=window.end_ms - MINUTE_MS)
    series: dict[str, SideSeries] = {}
    for rule in engine.rules:
        outcome = result.rules[rule.id]
        values = {group: dict(points) for group, points in outcome.series.items()}
        matched = matched_in(rule, engine.bucket_rows(rule.id), window)
        series[rule.id] = SideSeries(values, matched, f"{len(files)} archive file(s), {semantics} semantics")
    return ExpectedSide(series, files, result.warnings)
