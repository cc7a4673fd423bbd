"""``extalerts coverage``: which system carries each rule, and whether its logs are shipped."""

from __future__ import annotations

import json
from pathlib import Path

import click

from extalerts.cli.options import output_option, resolve_paths, spec_paths, text_table


@click.command("coverage")
@spec_paths
@output_option
def coverage_command(paths: tuple[Path, ...], output: str) -> None:
    """Show, per rule, whether Cloudflare's own notifications (Option A) can carry it and why, which
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
        click.echo(
            json.dumps(
                [
                    {
                        "rule": row.rule.id,
                        "option_a": row.verdict.option_a.value,
                        "cloudflare_alert_type": row.verdict.alert_type,
                        "why": row.verdict.reason,
                        "carried_by": list(PROVIDERS),
                        "logs": row.shipping,
                    }
                    for row in rows
                ],
                indent=2,
            )
        )
        return
    table = [("rule", "option A", "carried by", *(f"logs to {p}" for p in PROVIDERS))]
    for row in rows:
        option = row.verdict.option_a.value + (f" ({row.verdict.alert_type})" if row.verdict.alert_type else "")
        table.append((row.rule.id, option, ", ".join(PROVIDERS), *(row.shipping[p] for p in PROVIDERS)))
    click.echo(text_table(table))
    click.echo("")
    for reason in sorted({row.verdict.reason for row in rows}):
        ids = [row.rule.id for row in rows if row.verdict.reason == reason]
        click.echo(f"option A for {', '.join(ids)}: {reason}")
