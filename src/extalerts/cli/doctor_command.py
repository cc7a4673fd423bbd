"""``extalerts doctor``: check that logs really flow from the Workers to the providers, that Datadog
reads them as the rules assume, and that Splunk can search and notify."""

from __future__ import annotations

import json
from pathlib import Path

import click

from extalerts.cli.options import output_option, plural, resolve_paths, spec_paths


@click.command("doctor")
@spec_paths
@click.option(
    "--provider",
    "-p",
    "provider_name",
    type=click.Choice(["logpush", "datadog", "splunk", "cloudflare"]),
    default="logpush",
    show_default=True,
    help="What to check: the Logpush jobs (Cloudflare API), how Datadog reads the logs, the Splunk side, or "
    "what Cloudflare's Workers Observability alerts see (Option A).",
)
@click.option(
    "--api-url",
    default=None,
    metavar="URL",
    help="API base URL of the provider instead of its variable (Cloudflare, Datadog, or Splunk's management URL), "
    "e.g. a local emulator.",
)
@click.option(
    "--lookback",
    type=click.IntRange(1, 1440),
    default=15,
    show_default=True,
    metavar="MINUTES",
    help="Splunk: how far back to count events in the searched index.",
)
@click.option("--insecure", is_flag=True, help="Splunk: do not verify the TLS certificate of the management port.")
@output_option
def doctor_command(
    paths: tuple[Path, ...], provider_name: str, api_url: str | None, lookback: int, insecure: bool, output: str
) -> None:
    """Check that logs really flow and are read as the rules assume, and that alerts can notify.
    Read-only; exit code 1 on any problem, each named with the rules it breaks.

    \b
    --provider logpush (default, Cloudflare API): every managed Logpush job exists, is enabled and
    delivers; every Worker in logpush.scripts has Logpush on.
    --provider datadog (last hour of logs, Logs Aggregate API): the structured-log pipeline exists,
    is enabled and in the pipeline order; logs of each source arrive stamped with their event time;
    the structured line is read (array select, string builder, grok); each facet in
    rendered/datadog/facets.json works (ranges, measures, group-by).
    --provider splunk: the spec's app exists; every alert action the alerts use is installed and
    enabled; events of the last --lookback minutes reach the index and sourcetype the searches read
    (a one-shot search); and, when readable, the HEC token's default index is that index.
    --provider cloudflare: every Worker a Workers Observability alert watches for a rule has Workers
    Logs on, with the head_sampling_rate the spec states (else it names the recipe thresholds that
    are now wrong); and, when the account answers the undocumented read of its observability
    alerts, each matches its recipe (a 404 there is "not available", not a problem; nothing is
    written).

    \b
    Examples:
      CLOUDFLARE_API_TOKEN=… CLOUDFLARE_ACCOUNT_ID=… extalerts doctor
      DD_API_KEY=… DD_APP_KEY=… extalerts doctor --provider datadog
      SPLUNK_URL=https://splunk:8089 SPLUNK_TOKEN=… extalerts doctor --provider splunk
      CLOUDFLARE_API_TOKEN=… CLOUDFLARE_ACCOUNT_ID=… extalerts doctor --provider cloudflare
    """
    from extalerts.spec import load_spec

    spec = load_spec(resolve_paths(paths))
    if provider_name == "datadog":
        from extalerts.doctor_datadog import datadog_doctor
        from extalerts.providers.datadog import DatadogApi, DatadogSettings

        findings = datadog_doctor(spec, DatadogApi(DatadogSettings.from_env(api_url)))
    elif provider_name == "splunk":
        from extalerts.doctor_splunk import splunk_doctor
        from extalerts.providers.splunk import SplunkApi, SplunkProvider, SplunkSettings

        if insecure:
            click.echo("warning: --insecure: the server's TLS certificate is not verified", err=True)
        settings = SplunkSettings.from_env(api_url, insecure=insecure)
        findings = splunk_doctor(spec, SplunkProvider(SplunkApi(settings)), lookback)
    elif provider_name == "cloudflare":
        from extalerts.doctor_cloudflare import cloudflare_doctor
        from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings

        findings = cloudflare_doctor(spec, CloudflareApi(CloudflareSettings.from_env(api_url)))
    else:
        from extalerts.doctor import doctor
        from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings

        findings = doctor(spec, CloudflareApi(CloudflareSettings.from_env(api_url)))
    problems = [f for f in findings if not f.ok]
    if output == "json":
        click.echo(
            json.dumps(
                [{"ok": f.ok, "subject": f.subject, "message": f.message, "fix": f.fix} for f in findings], indent=2
            )
        )
    else:
        for finding in findings:
            mark = click.style("ok     ", fg="green") if finding.ok else click.style("PROBLEM", fg="red", bold=True)
            click.echo(f"{mark}  {finding.subject} {finding.message}" + (f"; {finding.fix}" if finding.fix else ""))
        click.echo(plural(len(problems), "problem"))
    if problems:
        raise click.exceptions.Exit(1)
