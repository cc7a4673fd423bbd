"""``extalerts plan`` and ``extalerts push``: compare with what is live, then apply safely."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from extalerts.cli.options import (
    confirm_or_refuse,
    output_option,
    plural,
    resolve_paths,
    spec_paths,
    stderr_progress,
    yes_option,
)

if TYPE_CHECKING:
    from extalerts.providers.base import ApplyResult, Change, Plan, Provider

PROVIDER_NAMES = ["datadog", "splunk", "logpush", "cloudflare"]
DEFAULT_STATE_FILE = Path(".extalerts/state.json")
PROGRESS_THRESHOLD = 5

_SYMBOLS = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red"), "unchanged": ("=", None)}


def _provider_options(fn: Any) -> Any:
    fn = click.option(
        "--insecure",
        is_flag=True,
        help="Splunk: do not verify the TLS certificate of the management port (prints a warning).",
    )(fn)
    fn = click.option(
        "--templates",
        "templates_dir",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        default=None,
        help="Template overrides, as for render.",
    )(fn)
    fn = click.option(
        "--api-url",
        default=None,
        metavar="URL",
        help="API endpoint instead of DD_SITE's (Datadog), SPLUNK_URL (Splunk) or Cloudflare's, e.g. an emulator.",
    )(fn)
    return click.option(
        "--provider",
        "-p",
        "provider_name",
        type=click.Choice(PROVIDER_NAMES),
        required=True,
        help="Which provider to compare with.",
    )(fn)


def _build(
    paths: tuple[Path, ...],
    provider_name: str,
    api_url: str | None,
    templates_dir: Path | None,
    prune: bool,
    insecure: bool,
    *,
    create_app: bool = False,
    lock: bool = False,
) -> tuple[Provider, Plan]:
    """The provider and its plan. With ``lock``, the provider's push lock (where it has one) is
    taken before the live objects are read, and held until the command ends."""
    from extalerts.plan import compute_plan
    from extalerts.providers import ProviderOptions, build_provider
    from extalerts.spec import load_spec

    spec = load_spec(resolve_paths(paths))
    if insecure:
        click.echo("warning: --insecure: the server's TLS certificate is not verified", err=True)
    options = ProviderOptions(api_url=api_url, templates_dir=templates_dir, insecure=insecure, create_app=create_app)
    provider = build_provider(provider_name, options)
    desired = provider.desired(spec)
    push_lock = getattr(provider, "push_lock", None)
    if lock and push_lock is not None:
        click.get_current_context().with_resource(push_lock())
    live = provider.fetch()
    if provider_name == "datadog":  # once the organisation answered: a failed listing says only that
        from extalerts.providers.datadog import facet_warning

        warning = facet_warning(spec)
        if warning:
            click.echo(f"warning: {warning}", err=True)
    plan = compute_plan(provider, desired, live, prune=prune)
    # Providers that could not do all the spec asks say so in ``notes`` (read after ``desired``).
    return provider, dataclasses.replace(plan, notes=tuple(getattr(provider, "notes", ())))


def print_plan(plan: Plan, *, show_unchanged: bool = False) -> None:
    from extalerts.plan import duplicate_notes, render_field_diff

    counts = plan.counts()
    click.echo(
        f"{plan.provider} plan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete, {counts['unchanged']} unchanged"
    )
    for change in plan.changes:
        if change.action.value == "unchanged" and not show_unchanged:
            continue
        symbol, colour = _SYMBOLS[change.action.value]
        where = f" (id {change.live_id})" if change.live_id else ""
        click.echo(click.style(f"{symbol} {change.action.value} {change.kind} {change.key}{where}", fg=colour))
        for field_change in change.fields:
            for line in render_field_diff(field_change):
                stripped = line.lstrip()
                fg = "red" if stripped.startswith("-") else "green" if stripped.startswith("+") else None
                click.echo(click.style(line, fg=fg))
    for note in plan.skipped:
        click.echo(f"left alone: {note}")
    for note in plan.notes:
        click.echo(f"note: {note}")
    for note in duplicate_notes(plan):
        click.echo(f"drift: {note}")


@click.command("plan")
@spec_paths
@_provider_options
@click.option("--prune", is_flag=True, help="Also plan deleting managed objects that are no longer in the spec.")
@output_option
def plan_command(
    paths: tuple[Path, ...],
    provider_name: str,
    api_url: str | None,
    templates_dir: Path | None,
    insecure: bool,
    prune: bool,
    output: str,
) -> None:
    """Show what a push would change, without changing anything.

    Reads the live objects extalerts owns (found by its tags, every page), normalises both sides and
    prints each object as create / update / delete / unchanged, with a diff of the fields that
    differ; edits made in the provider's UI show up as drift. Exit code: 0 nothing would change,
    2 something would, 1 error.

    \b
    Examples:
      DD_API_KEY=… DD_APP_KEY=… extalerts plan --provider datadog
      SPLUNK_URL=https://splunk:8089 SPLUNK_TOKEN=… extalerts plan -p splunk
      extalerts plan -p datadog --prune -o json > plan.json
    """
    from extalerts.plan import plan_to_json

    _, plan = _build(paths, provider_name, api_url, templates_dir, prune, insecure)
    if output == "json":
        click.echo(json.dumps(plan_to_json(plan), indent=2, sort_keys=True))
    else:
        print_plan(plan)
    raise click.exceptions.Exit(2 if plan.has_changes else 0)


@click.command("push")
@spec_paths
@_provider_options
@click.option("--prune", is_flag=True, help="Delete managed objects that are no longer in the spec.")
@click.option("--dry-run", is_flag=True, help="Only plan (same output and exit codes as `plan`).")
@yes_option("applying the changes")
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Apply even when the plan deletes more than --max-delete-share, or the live listing is shorter "
    "than the last push left.",
)
@click.option(
    "--max-delete-share",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Largest share of managed objects of a kind that one push may delete.",
)
@click.option("--concurrency", type=click.IntRange(1, 32), default=8, show_default=True, help="Parallel API writes.")
@click.option(
    "--create-app",
    is_flag=True,
    help="Splunk Enterprise: create the spec's app through REST (apps/local) when it is missing. "
    "Otherwise install the packaged app first (`extalerts package`).",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_STATE_FILE,
    show_default=True,
    help="Where the count of managed objects after the last push is kept, for the listing guard.",
)
@output_option
def push_command(
    paths: tuple[Path, ...],
    provider_name: str,
    api_url: str | None,
    templates_dir: Path | None,
    insecure: bool,
    prune: bool,
    dry_run: bool,
    yes: bool,
    allow_mass_delete: bool,
    max_delete_share: float,
    concurrency: int,
    create_app: bool,
    state_file: Path,
    output: str,
) -> None:
    """Make the provider match the spec: validate every change, then apply it.

    Order: the log pipeline and log-based metrics before the monitors that use them; updates keep
    the same id; deletes only with --prune, and never of objects extalerts does not own. Refuses to
    delete more than --max-delete-share of the managed objects, or to act on a live listing shorter
    than the last push left, unless --allow-mass-delete. Asks before applying, and refuses without
    --yes when standard input is not a terminal. Exit code 1 when anything failed; a re-run
    completes what an interrupted or failed push left.

    \b
    Examples:
      DD_API_KEY=… DD_APP_KEY=… extalerts push --provider datadog --yes
      SPLUNK_URL=https://splunk:8089 SPLUNK_TOKEN=… extalerts push -p splunk --yes
      extalerts push -p splunk --create-app --yes   # a Splunk Enterprise without the app
      extalerts push -p datadog --prune --dry-run
    """
    from extalerts.plan import Guards, StateFile, check_guards, plan_to_json

    provider, plan = _build(
        paths, provider_name, api_url, templates_dir, prune, insecure, create_app=create_app, lock=not dry_run
    )
    state = StateFile(state_file)
    if output == "text":
        print_plan(plan)
    if dry_run or not plan.has_changes:
        if output == "json":
            click.echo(json.dumps({"plan": plan_to_json(plan), "applied": [], "failed": []}, indent=2, sort_keys=True))
        if not plan.has_changes and not dry_run:
            state.write(provider.name, _after(plan), provider.target)
            if output == "text":
                click.echo("nothing to do")
        raise click.exceptions.Exit(2 if dry_run and plan.has_changes else 0)
    check_guards(plan, Guards(max_delete_share, allow_mass_delete, state.read(provider.name, provider.target)))
    changes = sum(1 for change in plan.changes if change.action.value != "unchanged")
    confirm_or_refuse(
        "push",
        f"applying {plural(changes, 'change')} to {provider.name}",
        f"Apply these changes to {provider.name}?",
        yes=yes,
    )
    result = _apply_with_progress(plan, provider, concurrency, quiet=output == "json")
    if result.ok:
        state.write(provider.name, _after(plan), provider.target)
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "plan": plan_to_json(plan),
                    "applied": [{"action": c.action.value, "kind": c.kind, "key": c.key} for c in result.applied],
                    "failed": [{"kind": c.kind, "key": c.key, "error": error} for c, error in result.failed],
                    "not_attempted": [{"kind": c.kind, "key": c.key} for c in result.not_attempted],
                    "ok": result.ok,
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        _print_summary(result)
    if not result.ok:
        raise click.exceptions.Exit(1)


def _after(plan: Plan) -> dict[str, int]:
    """Managed objects per kind once the plan is applied."""
    counts = dict(plan.live_counts)
    for change in plan.changes:
        if change.action.value == "create":
            counts[change.kind] = counts.get(change.kind, 0) + 1
        elif change.action.value == "delete":
            counts[change.kind] = counts.get(change.kind, 0) - 1
    return counts


def _apply_with_progress(plan: Plan, provider: Provider, concurrency: int, *, quiet: bool) -> ApplyResult:
    from extalerts.plan import apply_plan

    total = sum(1 for c in plan.changes if c.action.value != "unchanged")
    if quiet or total <= PROGRESS_THRESHOLD:
        return apply_plan(plan, provider, concurrency=concurrency)
    with stderr_progress(total, "applying", show_pos=True) as bar:

        def tick(change: Change, error: str | None) -> None:
            bar.update(1)

        return apply_plan(plan, provider, concurrency=concurrency, on_progress=tick)


def _print_summary(result: ApplyResult) -> None:
    done: dict[str, int] = {}
    for change in result.applied:
        done[change.action.value] = done.get(change.action.value, 0) + 1
    parts = [f"{done.get(a, 0)} {a}d" for a in ("create", "update", "delete")]
    click.echo(f"applied: {', '.join(parts)}; failed: {len(result.failed)}; not attempted: {len(result.not_attempted)}")
    for change, error in sorted(result.failed, key=lambda item: item[0].key):
        click.echo(f"failed: {change.action.value} {change.kind} {change.key}: {error}", err=True)
    for change in result.not_attempted:
        click.echo(
            f"not attempted: {change.action.value} {change.kind} {change.key} (an earlier step failed)", err=True
        )
    if not result.ok:
        click.echo("error: the push did not finish; fix the cause and run it again to complete it", err=True)
