"""``extalerts coverage``: which system carries each rule, and whether its logs are shipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from extalerts.cli.options import output_option, resolve_paths, spec_paths, text_table

if TYPE_CHECKING:
    from extalerts.coverage import Row


@click.command("coverage")
@spec_paths
@output_option
def coverage_command(paths: tuple[Path, ...], output: str) -> None:
    """Show, per rule, whether Cloudflare's own alerts (Option A: Notifications, and Workers
    Observability alerts entered from `render --provider cloudflare`) can carry it and why, which
    providers carry it (Option B), and whether a managed Logpush job ships the fields it reads.

    \b
    Example:
      extalerts coverage
      extalerts coverage -o json
    """
    from extalerts.coverage import PROVIDERS, coverage
    from extalerts.spec import load_spec

    rows = coverage(load_spec(resolve_paths(paths)))
    if output == "json":
        click.echo(json.dumps([_row_json(row, PROVIDERS) for row in rows], indent=2))
        return
    table = [("rule", "option A", "carried by", *(f"logs to {p}" for p in PROVIDERS))]
    for row in rows:
        table.append((row.rule.id, _option_cell(row), ", ".join(PROVIDERS), *(row.shipping[p] for p in PROVIDERS)))
    click.echo(text_table(table))
    click.echo("")
    for reason in sorted({row.verdict.reason for row in rows}):
        ids = [row.rule.id for row in rows if row.verdict.reason == reason]
        click.echo(f"option A for {', '.join(ids)}: {reason}")


def _option_cell(row: Row) -> str:
    verdict = row.verdict
    if verdict.alert_type:
        return f"{verdict.option_a.value} ({verdict.alert_type})"
    alerts = len(verdict.observability.alerts) if verdict.observability is not None else 0
    if alerts:
        return f"{verdict.option_a.value} ({alerts} observability alert{'s' if alerts != 1 else ''})"
    return verdict.option_a.value


def _row_json(row: Row, providers: tuple[str, ...]) -> dict[str, object]:
    """One rule; the keys after ``logs`` describe the Workers Observability alerts (added with them)."""
    verdict = row.verdict
    document: dict[str, object] = {
        "rule": row.rule.id,
        "option_a": verdict.option_a.value,
        "cloudflare_alert_type": verdict.alert_type,
        "why": verdict.reason,
        "carried_by": list(providers),
        "logs": row.shipping,
    }
    assessment = verdict.observability
    if assessment is not None:
        document["workers_observability"] = {
            "verdict": assessment.verdict.value,
            "alerts": [alert.name for alert in assessment.alerts],
            "lost": list(assessment.lost),
            "confirm": list(assessment.confirm),
            "reason": assessment.reason or None,
            "head_sampling_rate": row.rule.source.cloudflare.head_sampling_rate,
            "workers_logs_keys": {
                name: {"key": key.key, "event": key.event.value, "documented": key.documented, "source": key.source}
                for name, key in assessment.fields.items()
            },
        }
    return document
