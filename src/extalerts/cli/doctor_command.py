"""``extalerts doctor``: check that logs really flow from the Workers to the providers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from extalerts.cli.options import output_option, plural, resolve_paths, spec_paths


@click.command("doctor")
@spec_paths
@click.option("--api-url", default=None, metavar="URL", help="Cloudflare API base URL (e.g. a local emulator).")
@output_option
def doctor_command(paths: tuple[Path, ...], api_url: str | None, output: str) -> None:
    """Check, through the Cloudflare API, that every managed Logpush job exists, is enabled and
    delivers, and that every Worker in logpush.scripts has Logpush on. Exit code 1 on any problem.

    \b
    Example:
      CLOUDFLARE_API_TOKEN=… CLOUDFLARE_ACCOUNT_ID=… extalerts doctor
    """
    from extalerts.doctor import doctor
    from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
    from extalerts.spec import load_spec

    spec = load_spec(resolve_paths(paths))
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
