"""``extalerts emulator``: run a local provider API emulator in the foreground."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from extalerts.emulators.base import LoopbackServer

F = TypeVar("F", bound=Callable[..., Any])


def server_options(default_port: int) -> Callable[[F], F]:
    """The options every emulator takes: where to listen, and the faults to inject."""
    options = [
        click.option(
            "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default)."
        ),
        click.option("--port", type=click.IntRange(0, 65535), default=default_port, show_default=True),
        click.option(
            "--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share of failed calls."
        ),
        click.option(
            "--latency", type=click.FloatRange(0), default=0.0, show_default=True, help="Seconds added per call."
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for the injected faults."),
        click.option(
            "--env-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write the exports here (owner-only), once the emulator listens; removed when it stops.",
        ),
    ]

    def decorate(command: F) -> F:
        # Applied last to first, so that --help lists them in the order above.
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def serve_until_interrupted(emulator: LoopbackServer, banner: str, env: dict[str, str], env_file: Path | None) -> None:
    """Print what it is (stderr) and the exports that point extalerts at it (stdout), then serve
    until Ctrl-C, SIGTERM or SIGHUP; the env file exists exactly while it serves."""
    from extalerts.cli.drill_commands import _terminate_as_interrupt
    from extalerts.emulators.env_file import env_file as written_env_file
    from extalerts.emulators.env_file import shell_exports

    click.echo(f"{banner} (Ctrl-C to stop)", err=True)
    click.echo(shell_exports(env))
    try:
        # The port is bound already, so whoever sees the file can connect.
        with _terminate_as_interrupt(), written_env_file(env_file, env):
            emulator.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


def _made_up(names: dict[str, Callable[[], str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Each credential from the environment, or made up: (the values, the made-up ones to export).
    Only made-up ones are printed; one the user exported is a secret of theirs."""
    values = {name: os.environ.get(name) or make_up() for name, make_up in names.items()}
    return values, {name: value for name, value in values.items() if not os.environ.get(name)}


@click.group("emulator")
def emulator_group() -> None:
    """Run a local emulator of a provider's API, for trying extalerts without an account.

    \b
    Example:
      extalerts emulator datadog --port 8125 --env-file build/datadog.env &
      while [ ! -f build/datadog.env ]; do sleep 0.1; done; . build/datadog.env
      extalerts push --provider datadog --yes
    """


@emulator_group.command("datadog")
@server_options(default_port=8125)
@click.option(
    "--facet",
    "facet_specs",
    multiple=True,
    metavar="PATH:TYPE[:measure]",
    help="A log facet the org has (repeatable; TYPE string, integer or double; `:measure` makes it a measure). "
    "Numeric ranges need a numeric facet, numeric aggregations a measure.",
)
@click.option(
    "--facets-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also create the facets a rendered facets.json lists (rendered/datadog/facets.json).",
)
def datadog_emulator_command(
    host: str,
    port: int,
    fault_rate: float,
    latency: float,
    seed: int,
    env_file: Path | None,
    facet_specs: tuple[str, ...],
    facets_file: Path | None,
) -> None:
    """Serve the Datadog monitor, logs-metrics, log-pipeline and Logs Aggregate API and the logs intake
    on loopback, and evaluate what is pushed: pipelines run on received logs, monitors every minute.

    It accepts the keys in DD_API_KEY and DD_APP_KEY, or, when those are unset, keys it makes up
    and prints (they guard nothing but this local process), with the API and intake URLs. Datadog
    has no API for log facets: give the org's facets with --facet (or --facets-file).

    \b
    Example:
      extalerts emulator datadog --port 8125 --facet @Event.Response.Status:integer \\
        --facet @WallTimeMs:integer:measure
    """
    from extalerts.emulators.base import Faults
    from extalerts.emulators.datadog import DatadogEmulator
    from extalerts.emulators.datadog.facets import parse_facet, read_facets_file
    from extalerts.intake import DATADOG_INTAKE_URL_ENV
    from extalerts.providers.datadog import DATADOG_API_URL_ENV

    facets = [parse_facet(text) for text in facet_specs]
    if facets_file is not None:
        facets += read_facets_file(facets_file)
    keys, made_up = _made_up({"DD_API_KEY": lambda: secrets.token_hex(16), "DD_APP_KEY": lambda: secrets.token_hex(20)})
    emulator = DatadogEmulator(
        keys["DD_API_KEY"],
        keys["DD_APP_KEY"],
        Faults(rate=fault_rate, seed=seed, latency=latency),
        host=host,
        port=port,
        facets=facets,
        report=lambda line: click.echo(f"datadog emulator: {line}", err=True),
    )
    env = {**made_up, DATADOG_API_URL_ENV: emulator.url, DATADOG_INTAKE_URL_ENV: emulator.url}
    banner = f"Datadog API emulator on {emulator.url}"
    if facets:
        banner += f"; facets: {', '.join(f.spec() for f in facets)}"
    emulator.evaluate_in_background(every_seconds=5.0)
    serve_until_interrupted(emulator, banner, env, env_file)


@emulator_group.command("splunk")
@server_options(default_port=8089)
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="NAME",
    help="An app installed from the start (repeatable); otherwise only Splunk's own, as on a fresh install.",
)
@click.option(
    "--alert-action",
    "alert_actions",
    multiple=True,
    metavar="NAME",
    help="An alert action installed besides the built-in ones (repeatable), e.g. pagerduty or slack.",
)
def splunk_emulator_command(
    host: str,
    port: int,
    fault_rate: float,
    latency: float,
    seed: int,
    env_file: Path | None,
    apps: tuple[str, ...],
    alert_actions: tuple[str, ...],
) -> None:
    """Serve Splunk's saved-searches REST API and HEC raw ingest on loopback, over plain HTTP.

    It accepts the token in SPLUNK_TOKEN (REST) and SPLUNK_HEC_TOKEN (HEC), or, when unset, tokens
    it makes up and prints, with SPLUNK_URL and SPLUNK_HEC_URL (both this server). Like a fresh
    Splunk it has no extalerts app: install it with --app, or push with --create-app.

    \b
    Example:
      extalerts emulator splunk --port 8089 --alert-action pagerduty --env-file build/splunk.env &
      while [ ! -f build/splunk.env ]; do sleep 0.1; done; . build/splunk.env
      extalerts push --provider splunk --create-app --yes
    """
    from extalerts.emulators.base import Faults
    from extalerts.emulators.splunk import SplunkEmulator, made_up_hec_token
    from extalerts.intake import SPLUNK_HEC_URL_ENV

    tokens, made_up = _made_up({"SPLUNK_TOKEN": lambda: secrets.token_hex(16), "SPLUNK_HEC_TOKEN": made_up_hec_token})
    emulator = SplunkEmulator(
        token=tokens["SPLUNK_TOKEN"],
        hec_token=tokens["SPLUNK_HEC_TOKEN"],
        apps=apps,
        alert_actions=alert_actions,
        faults=Faults(rate=fault_rate, seed=seed, latency=latency),
        host=host,
        port=port,
    )
    env = {**made_up, "SPLUNK_URL": emulator.url, SPLUNK_HEC_URL_ENV: emulator.url}
    serve_until_interrupted(emulator, f"Splunk REST and HEC emulator on {emulator.url}", env, env_file)


@emulator_group.command("cloudflare")
@server_options(default_port=8787)
@click.option(
    "--pagerduty-service",
    "pagerduty",
    multiple=True,
    metavar="NAME",
    help="A PagerDuty service connected to the account (repeatable) [default: those the targets of --spec name].",
)
@click.option(
    "--spec",
    "spec_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Spec whose PagerDuty targets are connected [default: monitors/, when it exists].",
)
def cloudflare_emulator_command(
    host: str,
    port: int,
    fault_rate: float,
    latency: float,
    seed: int,
    env_file: Path | None,
    pagerduty: tuple[str, ...],
    spec_dirs: tuple[Path, ...],
) -> None:
    """Serve the Cloudflare v4 API subset extalerts uses (Logpush jobs, notifications, Worker settings).

    It accepts CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID, or makes them up and prints them,
    with EXTALERTS_CLOUDFLARE_API_URL. The scripts conversation-api and auth-worker exist, with
    Logpush on. PagerDuty services are connected in Cloudflare's dashboard, never through the API,
    so the emulator starts with them connected: those named by --pagerduty-service, or else those
    the spec's targets name.

    \b
    Example:
      extalerts emulator cloudflare --port 8787 --pagerduty-service conversation-api-oncall &
      extalerts push --provider cloudflare --api-url http://127.0.0.1:8787/client/v4 --yes
    """
    from extalerts.cli.options import DEFAULT_SPEC_DIR
    from extalerts.emulators.base import Faults
    from extalerts.emulators.cloudflare import CloudflareEmulator, pagerduty_services
    from extalerts.providers.cloudflare_api import CLOUDFLARE_API_URL_ENV

    if not pagerduty and (spec_dirs or DEFAULT_SPEC_DIR.is_dir()):
        from extalerts.spec.loader import load_spec

        pagerduty = tuple(pagerduty_services(load_spec(list(spec_dirs) or [DEFAULT_SPEC_DIR])))
    credentials, made_up = _made_up(
        {"CLOUDFLARE_API_TOKEN": lambda: secrets.token_hex(20), "CLOUDFLARE_ACCOUNT_ID": lambda: secrets.token_hex(16)}
    )
    faults = Faults(rate=fault_rate, seed=seed, latency=latency)
    emulator = CloudflareEmulator(
        credentials["CLOUDFLARE_API_TOKEN"], credentials["CLOUDFLARE_ACCOUNT_ID"], faults, host=host, port=port
    )
    for script in ("conversation-api", "auth-worker"):
        emulator.add_script(script, logpush=True)
    emulator.connect_pagerduty(pagerduty)
    banner = f"Cloudflare API emulator on {emulator.url}"
    if pagerduty:
        banner += f"; PagerDuty services connected: {', '.join(pagerduty)}"
    env = {**made_up, CLOUDFLARE_API_URL_ENV: emulator.url}
    serve_until_interrupted(emulator, banner, env, env_file)
