"""``extalerts synth``: realistic Workers Trace Events for tests, demos and benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from extalerts.cli.options import output_option, plural

if TYPE_CHECKING:
    from extalerts.synth import SynthStats


@click.command("synth")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="NDJSON file (.gz compresses; its folder is made), or - for standard output.",
)
@click.option("--minutes", type=click.IntRange(1), default=60, show_default=True, help="How long the traffic runs.")
@click.option("--rpm", type=click.IntRange(1), default=600, show_default=True, help="Baseline requests per minute.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--start",
    default=None,
    help="When the traffic starts, ISO 8601; UTC unless it names a zone (default 2026-01-01T00:00:00Z).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    metavar="NAME@START+DURATION",
    help="An incident, e.g. exception-storm@30m+10m; repeatable. --list-scenarios names them.",
)
@click.option("--list-scenarios", is_flag=True, help="List the incident scenarios and exit.")
@output_option
def synth_command(
    out: Path | None,
    minutes: int,
    rpm: int,
    seed: int,
    start: str | None,
    scenarios: tuple[str, ...],
    list_scenarios: bool,
    output: str,
) -> None:
    """Write Workers Trace Events NDJSON exactly as Logpush writes them: baseline traffic of a Workers
    API with a ConversationStateDO Durable Object, plus named incidents. Seeded and deterministic.

    \b
    Examples:
      extalerts synth --out build/incident.ndjson --minutes 90 --scenario exception-storm@70m+5m
      extalerts synth --out big.ndjson.gz --minutes 1440 --rpm 700 --seed 7
      extalerts synth --out - --minutes 5 | head -1
      extalerts synth --list-scenarios
      extalerts synth --out build/day.ndjson --minutes 1440 -o json   # what was written, for scripts
    """
    import sys

    from extalerts.synth import DEFAULT_START_MS, SCENARIOS, SynthConfig, generate, parse_scenario, write

    if list_scenarios:
        if output == "json":
            listed = [{"name": name, "description": text} for name, text in SCENARIOS.items()]
            click.echo(json.dumps(listed, indent=2))
            return
        width = max(len(name) for name in SCENARIOS)
        for name, description in SCENARIOS.items():
            click.echo(f"{name:<{width}}  {description}")
        return
    if out is None:
        raise click.UsageError("Missing option '--out' (a file, or - for standard output).")
    start_ms = DEFAULT_START_MS if start is None else _epoch_ms(start)
    try:
        parsed = tuple(parse_scenario(text) for text in scenarios)
        config = SynthConfig(start_ms=start_ms, minutes=minutes, requests_per_minute=rpm, seed=seed, scenarios=parsed)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    to_stdout = str(out) == "-"
    if to_stdout and output == "json":
        raise click.UsageError(
            "--out - writes the events to standard output, where -o json writes its report; give --out a file"
        )
    try:
        stats = write(config, sys.stdout.buffer) if to_stdout else generate(config, out)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the command group ends quietly
    except OSError as exc:
        raise click.FileError(str(out), hint=exc.strerror or str(exc)) from None
    if output == "json":
        click.echo(json.dumps(_report(out, config, stats), indent=2))
        return
    # With the events on standard output, what was written is told on standard error.
    click.echo(f"{plural(stats.events, 'event')} written to {'standard output' if to_stdout else out}", err=to_stdout)
    for scenario in parsed:
        click.echo(f"  incident {scenario}", err=to_stdout)


def _report(out: Path, config: Any, stats: SynthStats) -> dict[str, Any]:
    """What was written, for ``-o json``: the same for the same options (the seed fixes every byte)."""
    return {
        "out": str(out),
        "events": stats.events,
        "minutes": config.minutes,
        "rpm": config.requests_per_minute,
        "seed": config.seed,
        "first_timestamp_ms": stats.first_timestamp_ms,
        "last_timestamp_ms": stats.last_timestamp_ms,
        "scenarios": [
            {"scenario": str(scenario), "start_ms": start_ms, "end_ms": end_ms}
            for scenario, start_ms, end_ms in stats.windows
        ],
        "counts": [
            {"script": script, "event_type": event_type, "outcome": outcome, "events": count}
            for (script, event_type, outcome), count in sorted(stats.counts.items())
        ],
    }


def _epoch_ms(start: str) -> int:
    """``--start`` in epoch ms; a time without a zone is UTC, so the same seed gives the same bytes anywhere."""
    from extalerts.spec.models import parse_time_ms

    start_ms = parse_time_ms(start)
    if start_ms is None:
        raise click.BadParameter(f"{start!r} is not an ISO 8601 time, e.g. 2026-01-01T00:00:00Z", param_hint="--start")
    if start_ms < 0:
        raise click.BadParameter(f"{start!r} is before 1970", param_hint="--start")
    return start_ms
