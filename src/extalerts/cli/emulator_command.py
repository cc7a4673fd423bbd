"""``extalerts emulator``: run a local provider API emulator in the foreground."""

from __future__ import annotations

import os
from collections.abc import Callable
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
    ]

    def decorate(command: F) -> F:
        # Applied last to first, so that --help lists them in the order above.
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def serve_until_interrupted(emulator: LoopbackServer) -> None:
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")


@click.group("emulator")
def emulator_group() -> None:
    """Run a local emulator of a provider's API, for trying extalerts without an account.

    \b
    Example:
      extalerts emulator datadog --port 8125 &
      extalerts push --provider datadog --api-url http://127.0.0.1:8125 --yes
    """


@emulator_group.command("datadog")
@server_options(default_port=8125)
def datadog_emulator_command(host: str, port: int, fault_rate: float, latency: float, seed: int) -> None:
    """Serve the Datadog monitor, logs-metrics and log-pipeline API on loopback.

    It accepts the keys in DD_API_KEY and DD_APP_KEY, or, when those are unset, keys it makes up
    and prints (they guard nothing but this local process).

    \b
    Example:
      extalerts emulator datadog --port 8125 --fault-rate 0.2
    """
    import secrets

    from extalerts.emulators.base import Faults
    from extalerts.emulators.datadog import DatadogEmulator

    api_key = os.environ.get("DD_API_KEY") or secrets.token_hex(16)
    app_key = os.environ.get("DD_APP_KEY") or secrets.token_hex(20)
    emulator = DatadogEmulator(
        api_key, app_key, Faults(rate=fault_rate, seed=seed, latency=latency), host=host, port=port
    )
    click.echo(f"Datadog API emulator on {emulator.url} (Ctrl-C to stop)")
    if "DD_API_KEY" not in os.environ or "DD_APP_KEY" not in os.environ:
        click.echo(f"export DD_API_KEY={api_key} DD_APP_KEY={app_key}")
    click.echo(f"extalerts plan --provider datadog --api-url {emulator.url}")
    serve_until_interrupted(emulator)


@emulator_group.command("splunk")
@server_options(default_port=8089)
def splunk_emulator_command(host: str, port: int, fault_rate: float, latency: float, seed: int) -> None:
    """Serve Splunk's saved-searches REST API (and HEC raw ingest) on loopback, over plain HTTP.

    It accepts the token in SPLUNK_TOKEN, or, when that is unset, a token it makes up and prints.

    \b
    Example:
      extalerts emulator splunk --port 8089 &
      SPLUNK_URL=http://127.0.0.1:8089 SPLUNK_TOKEN=… extalerts push --provider splunk --yes
    """
    import secrets

    from extalerts.emulators.base import Faults
    from extalerts.emulators.splunk import SplunkEmulator

    token = os.environ.get("SPLUNK_TOKEN") or secrets.token_hex(16)
    emulator = SplunkEmulator(
        token=token, faults=Faults(rate=fault_rate, seed=seed, latency=latency), host=host, port=port
    )
    click.echo(f"Splunk REST emulator on {emulator.url} (Ctrl-C to stop)")
    if "SPLUNK_TOKEN" not in os.environ:
        click.echo(f"export SPLUNK_TOKEN={token}")
    click.echo(f"export SPLUNK_URL={emulator.url}")
    serve_until_interrupted(emulator)


@emulator_group.command("cloudflare")
@server_options(default_port=8787)
def cloudflare_emulator_command(host: str, port: int, fault_rate: float, latency: float, seed: int) -> None:
    """Serve the Cloudflare v4 API subset extalerts uses (Logpush jobs, notifications, Worker settings).

    It accepts CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID, or makes them up and prints them.
    The scripts conversation-api and auth-worker exist, with Logpush on.

    \b
    Example:
      extalerts emulator cloudflare --port 8787 &
      extalerts push --provider logpush --api-url http://127.0.0.1:8787/client/v4 --yes
    """
    import secrets

    from extalerts.emulators.base import Faults
    from extalerts.emulators.cloudflare import CloudflareEmulator

    token = os.environ.get("CLOUDFLARE_API_TOKEN") or secrets.token_hex(20)
    account = os.environ.get("CLOUDFLARE_ACCOUNT_ID") or secrets.token_hex(16)
    faults = Faults(rate=fault_rate, seed=seed, latency=latency)
    emulator = CloudflareEmulator(token, account, faults, host=host, port=port)
    for script in ("conversation-api", "auth-worker"):
        emulator.add_script(script, logpush=True)
    click.echo(f"Cloudflare API emulator on {emulator.url} (Ctrl-C to stop)")
    if "CLOUDFLARE_API_TOKEN" not in os.environ or "CLOUDFLARE_ACCOUNT_ID" not in os.environ:
        click.echo(f"export CLOUDFLARE_API_TOKEN={token} CLOUDFLARE_ACCOUNT_ID={account}")
    serve_until_interrupted(emulator)
