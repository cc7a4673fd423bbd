"""``extalerts verify``: each rule's rendered query run through the provider's own search API, and
compared with what the engine expects from the Logpush archive. Read-only."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from extalerts.cli.engine_commands import _check_rule_ids, _shipping_jobs, _spec_option, _time_option
from extalerts.cli.options import output_option, plural, resolve_paths, text_table

if TYPE_CHECKING:
    from extalerts.spec.loader import Spec
    from extalerts.verify.lag import Lag
    from extalerts.verify.model import ProviderSide


@dataclass
class ArchiveFacts:
    """What the archive tells a provider side, filled once it is read: the side is built before, so
    that missing credentials fail at once, not after a long replay."""

    #: Logpush's delivery lag, from the archive's object names (None: no archive, or no batch names).
    lag: Lag | None = None
    #: Events each rule's filter matched in the archive over the verified window, by rule id.
    matched_events: dict[str, int] = field(default_factory=dict)


def _datadog_side(spec: Spec, api_url: str | None, archive: ArchiveFacts) -> ProviderSide:
    from extalerts.providers.datadog import DatadogApi, DatadogSettings
    from extalerts.verify.datadog import DatadogSide

    return DatadogSide(spec, DatadogApi(DatadogSettings.from_env(api_url)), lag=lambda: archive.lag)


def _splunk_side(spec: Spec, api_url: str | None, archive: ArchiveFacts) -> ProviderSide:
    from extalerts.providers.splunk import SplunkApi, SplunkSettings
    from extalerts.verify.splunk import SplunkSide

    side = SplunkSide(SplunkApi(SplunkSettings.from_env(api_url)), spec)
    side.expected_events = archive.matched_events  # filled in place once the archive is read
    return side


#: The provider sides verify can run: name -> what builds it from the spec, --api-url and the facts
#: the archive gives (filled once it is read).
SIDES: dict[str, Callable[[Spec, str | None, ArchiveFacts], ProviderSide]] = {
    "datadog": _datadog_side,
    "splunk": _splunk_side,
}


def _window(since: str | None, start: str | None, end: str | None, now_ms: int) -> tuple[int, int]:
    """The evaluation minutes verified, ``[start, end)``, on minute boundaries."""
    from extalerts.engine import MINUTE_MS
    from extalerts.spec.models import parse_duration

    if since is not None and (start is not None or end is not None):
        raise click.UsageError("give --since, or --from and --to, not both")
    if start is not None or end is not None:
        if start is None or end is None:
            raise click.UsageError("--from and --to go together")
        first, last = _time_option(start, "--from"), _time_option(end, "--to")
        assert first is not None
        assert last is not None
    else:
        try:
            seconds = parse_duration(since or "24h")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
        last = now_ms
        first = now_ms - seconds * 1000
    first, last = -(-first // MINUTE_MS) * MINUTE_MS, last // MINUTE_MS * MINUTE_MS
    if last <= first:
        raise click.BadParameter("the window holds no whole minute; --to must come after --from", param_hint="--to")
    return first, last


@click.command("verify")
@click.argument("paths", nargs=-1, metavar="[ARCHIVE]...")
@click.option(
    "--provider",
    "-p",
    "provider_name",
    type=click.Choice(sorted(SIDES)),
    required=True,
    help="Whose search API to verify the rules against.",
)
@_spec_option
@click.option("--since", metavar="DURATION", help="The window: the last DURATION, e.g. 24h (default).")
@click.option("--from", "start", metavar="TIME", help="First evaluation minute, ISO 8601 (UTC unless it names a zone).")
@click.option("--to", "end", metavar="TIME", help="End of the window (exclusive), ISO 8601.")
@click.option(
    "--archive", "archives", multiple=True, metavar="URL", help="The Logpush archive: s3://bucket/prefix, or a path."
)
@click.option("--rule", "rule_ids", multiple=True, help="Only these rules.")
@click.option("--api-url", default=None, metavar="URL", help="API base URL instead of the provider's variable.")
@output_option
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML report.")
def verify_command(
    paths: tuple[str, ...],
    provider_name: str,
    spec_paths: tuple[Path, ...],
    since: str | None,
    start: str | None,
    end: str | None,
    archives: tuple[str, ...],
    rule_ids: tuple[str, ...],
    api_url: str | None,
    output: str,
    report: Path | None,
) -> None:
    """Run each rule's rendered query through the provider's own search API, per evaluation minute
    and group, and compare it with the engine's replay of the Logpush archive (the same window):
    values, firing timelines, the first minute they diverge, events each side, and a checked cause.
    Without an archive, a sanity check: each rule's search matches events, the attributes and
    facets it needs are there. Read-only.

    \b
    Exit codes: 0 every rule agrees, 3 a rule diverges, 1 an error.

    \b
    Examples:
      DD_API_KEY=… DD_APP_KEY=… extalerts verify --provider datadog --since 6h --archive s3://logs/workers/
      extalerts verify -p datadog --from 2026-11-01T00:00Z --to 2026-11-01T06:00Z archive/ -o json
      extalerts verify -p datadog --since 1h --rule worker-exception --report verify.html
      SPLUNK_URL=… SPLUNK_TOKEN=… extalerts verify -p splunk --since 6h --archive s3://logs/workers/
    """
    from extalerts.clock import Clock
    from extalerts.spec import load_spec
    from extalerts.verify.run import Verification, verify

    # The provider's clock: in the sandbox, its scaled time (--since counts sandbox minutes).
    first, last = _window(since, start, end, Clock.from_env().now_ms())
    spec = load_spec(resolve_paths(spec_paths))
    _check_rule_ids(rule_ids, [r.id for r in spec.rules])
    rules = [r for r in spec.rules if not rule_ids or r.id in rule_ids]
    from extalerts.verify.model import Window

    window = Window(first, last)
    sources = [*archives, *paths]
    expected, warnings, archive = None, [], ArchiveFacts()
    # Built first: missing credentials fail before a long replay.
    side = SIDES[provider_name](spec, api_url, archive)
    if sources:
        from extalerts.verify.expected import expected_series
        from extalerts.verify.lag import delivery_lag

        _say(f"replaying {plural(len(sources), 'archive source')} with the engine")
        # The rules see what the provider's Logpush jobs ship of the archive, as in `replay`.
        _, shipped = _shipping_jobs(spec, "auto", provider_name)
        replayed = expected_series(
            spec, [r.id for r in rules], window, sources, semantics=side.semantics, shipped=shipped
        )
        expected, warnings = replayed.series, replayed.warnings
        archive.lag = delivery_lag(replayed.files)
        archive.matched_events.update({rule_id: found.matched_events for rule_id, found in expected.items()})

    def progress(what: str, done: int, total: int) -> None:
        if sys.stderr.isatty() or done == total:
            _say(f"{side.name}: {what}: {done}/{total} calls")

    outcomes = verify(side, rules, window, expected, progress=progress)
    result = Verification(provider_name, window, outcomes, expected is not None, archive.lag, warnings)
    if report is not None:
        from extalerts.report import write_verify_report

        write_verify_report(spec, result, report)
    _print(result, output)
    if report is not None and output != "json":
        click.echo(f"report: {report}")
    raise click.exceptions.Exit(result.exit_code)


def _say(line: str) -> None:
    click.echo(line, err=True)


def _print(result: Any, output: str) -> None:
    from extalerts.verify.run import as_json, cause_lines, table_rows

    if output == "json":
        click.echo(json.dumps(as_json(result), indent=2))
        return
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(text_table(table_rows(result)))
    for line in cause_lines(result):
        click.echo(line)
    if result.lag is not None:
        click.echo(result.lag.describe() + f"; an evaluation_delay of {result.lag.suggested_delay_s} s covers p99")
    diverging = sum(1 for o in result.rules if o.verdict != "agree")
    mode = "compared with the archive" if result.compared else "sanity checks only (no --archive)"
    click.echo(f"{plural(len(result.rules), 'rule')} verified, {diverging} not in agreement; {mode}")
