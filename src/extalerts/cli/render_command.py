"""``extalerts render``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from extalerts.cli.options import output_option, plural, resolve_paths, spec_paths, text_table

if TYPE_CHECKING:
    from extalerts.render import RenderedFile
    from extalerts.render.splunk_schedule import ScanCost
    from extalerts.spec import Spec

PROVIDER_CHOICES = ["datadog", "splunk", "cloudflare", "all"]


@click.command("render")
@spec_paths
@click.option(
    "--provider",
    "-p",
    type=click.Choice(PROVIDER_CHOICES),
    default="all",
    show_default=True,
    help="Which provider's documents to render.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("rendered"),
    show_default=True,
    help="Output directory; extalerts owns its datadog/, splunk/ and cloudflare/ subdirectories.",
)
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Directory of templates that override the built-in ones, file by file.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the files on disk are stale.")
@output_option
def render_command(
    paths: tuple[Path, ...], provider: str, out: Path, templates_dir: Path | None, check: bool, output: str
) -> None:
    """Render the spec into Datadog monitor JSON, a Splunk app, and Cloudflare Workers Observability
    alert recipes (JSON and dashboard steps, for the rules Option A can carry).

    Output is deterministic: rendering twice gives byte-identical files, so the result can be
    committed and reviewed in a pull request. Files extalerts no longer renders are removed from
    the provider directories it owns.

    \b
    Examples:
      extalerts render --provider all --out rendered/
      extalerts render --provider splunk --out build/ --templates my-templates/
      extalerts render --check --out rendered/   # in CI
    """
    from extalerts.render import RENDERERS, render, write_files
    from extalerts.spec import load_spec

    spec = load_spec(resolve_paths(paths))
    providers = list(RENDERERS) if provider == "all" else [provider]
    files = render(spec, providers, templates_dir)
    changed = write_files(files, out, providers, check=check)
    costs = _splunk_scan_costs(spec, templates_dir) if "splunk" in providers else None
    if output == "json":
        document: dict[str, object] = {
            "out": str(out),
            "files": [f.path for f in files],
            "changed": changed,
            "checked": check,
        }
        if costs is not None:
            document["splunk_scan"] = _scan_json(costs)
        click.echo(json.dumps(document, indent=2))
        return
    if check:
        are = "is" if len(files) == 1 else "are"
        click.echo(f"ok: {plural(len(files), 'rendered file')} in {out} {are} up to date")
        return
    _print_summary(spec, files, providers)
    if costs is not None:
        _print_scan_costs(costs)
    click.echo(f"{plural(len(files), 'file')} rendered to {out}/ ({len(changed):,} changed)")


def _splunk_scan_costs(spec: Spec, templates_dir: Path | None) -> list[ScanCost]:
    from extalerts.render import Templates
    from extalerts.render.splunk import SplunkRenderer

    return SplunkRenderer(spec, Templates(templates_dir)).scan_costs()


def _scan_total(costs: list[ScanCost]) -> float | None:
    per_alert = [cost.minutes_per_hour for cost in costs]
    return None if any(m is None for m in per_alert) else sum(m for m in per_alert if m is not None)


def _scan_json(costs: list[ScanCost]) -> dict[str, object]:
    return {
        "alerts": [
            {
                "alert": cost.alert,
                "rule": cost.rule_id,
                "runs_per_hour": cost.runs_per_hour,
                "minutes_per_run": cost.minutes_per_run,
                "minutes_per_hour": cost.minutes_per_hour,
            }
            for cost in costs
        ],
        "minutes_per_hour": _scan_total(costs),
    }


def _print_scan_costs(costs: list[ScanCost]) -> None:
    """What each Splunk alert reads: a reviewer sees the cost of a schedule or window change."""
    from extalerts.render.splunk_schedule import format_minutes

    rows = [("splunk alert", "runs/hour", "minutes/run", "event-minutes read/hour")]
    for cost in costs:
        rows.append(
            (
                cost.alert,
                format_minutes(cost.runs_per_hour),
                format_minutes(cost.minutes_per_run),
                format_minutes(cost.minutes_per_hour),
            )
        )
    rows.append(("total", "", "", format_minutes(_scan_total(costs))))
    click.echo(text_table(rows))


def _print_summary(spec: Spec, files: list[RenderedFile], providers: list[str]) -> None:
    """One row per rule: what it is and what each provider got."""
    from extalerts.spec.models import format_duration

    per_rule: dict[str, Counter[str]] = {rule.id: Counter() for rule in spec.rules}
    for file in files:
        if file.rule_id in per_rule:
            per_rule[file.rule_id][file.path.split("/")[0]] += 1
    rows = [("rule", "signal", "window", "severity", *providers)]
    for rule in spec.rules:
        counts = per_rule[rule.id]
        cells = []
        for name in providers:
            if name == "datadog":
                cells.append("monitor" + (" + metric" if counts[name] > 1 else ""))
            elif name == "cloudflare":
                cells.append("recipe" if counts[name] else "-")
            else:
                cells.append(plural(counts[name], "alert"))
        r = rule.rule
        rows.append((rule.id, r.signal.kind, format_duration(r.window), r.severity.value, *cells))
    click.echo(text_table(rows))
