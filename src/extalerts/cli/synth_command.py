"""``extalerts synth``: realistic Workers Trace Events for tests, demos and benchmarks."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("synth")
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="NDJSON file; .gz compresses."
)
@click.option("--minutes", type=click.IntRange(1), default=60, show_default=True, help="How long the traffic runs.")
@click.option("--rpm", type=click.IntRange(1), default=600, show_default=True, help="Baseline requests per minute.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--start", default=None, help="When the traffic starts, ISO 8601 (default 2026-01-01T00:00:00Z).")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    metavar="NAME@START+DURATION",
    help="An incident, e.g. exception-storm@30m+10m; repeatable. --list-scenarios names them.",
)
@click.option("--list-scenarios", is_flag=True, help="List the incident scenarios and exit.")
def synth_command(
    out: Path, minutes: int, rpm: int, seed: int, start: str | None, scenarios: tuple[str, ...], list_scenarios: bool
) -> None:
    """Write Workers Trace Events NDJSON exactly as Logpush writes them: baseline traffic of a Workers
    API with a ConversationStateDO Durable Object, plus named incidents. Seeded and deterministic.

    \b
    Examples:
      extalerts synth --out build/incident.ndjson --minutes 90 --scenario exception-storm@70m+5m
      extalerts synth --out big.ndjson.gz --minutes 1440 --rpm 700 --seed 7
      extalerts synth --out x --list-scenarios
    """
    from datetime import datetime

    from extalerts.synth import DEFAULT_START_MS, SCENARIOS, SynthConfig, generate, parse_scenario

    if list_scenarios:
        width = max(len(name) for name in SCENARIOS)
        for name, description in SCENARIOS.items():
            click.echo(f"{name:<{width}}  {description}")
        return
    try:
        parsed = tuple(parse_scenario(text) for text in scenarios)
        start_ms = DEFAULT_START_MS
        if start is not None:
            start_ms = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000)
        config = SynthConfig(start_ms=start_ms, minutes=minutes, requests_per_minute=rpm, seed=seed, scenarios=parsed)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    stats = generate(config, out)
    click.echo(f"{stats.events:,} events written to {out}")
    for scenario in parsed:
        click.echo(f"  incident {scenario}")
