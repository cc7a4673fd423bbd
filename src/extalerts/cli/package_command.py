"""``extalerts package``: the rendered Splunk app as an installable archive."""

from __future__ import annotations

import json
from pathlib import Path

import click

from extalerts.cli.options import output_option, plural, resolve_paths, spec_paths


@click.command("package")
@spec_paths
@click.option("--provider", "-p", type=click.Choice(["splunk"]), default="splunk", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Archive path (default build/<app>.tgz).")
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Template overrides, as for render.",
)
@output_option
def package_command(
    paths: tuple[Path, ...], provider: str, out: Path | None, templates_dir: Path | None, output: str
) -> None:
    """Build the Splunk app into a .tgz for a deployment server or Splunk Cloud (ACS).

    The archive holds the same files as `render --provider splunk`, app directory at the root, every
    .conf file checked, and is reproducible byte for byte.

    \b
    Examples:
      extalerts package --provider splunk --out build/extalerts_workers.tgz
      extalerts package -o json    # the archive's path, app and members, for scripts
    """
    from extalerts.package import build_package
    from extalerts.spec import load_spec

    spec = load_spec(resolve_paths(paths))
    target = out or Path("build") / f"{spec.splunk_app}.tgz"
    members = build_package(spec, target, templates_dir)
    if output == "json":
        report = {"archive": str(target), "provider": provider, "app": spec.splunk_app, "members": members}
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{target}: Splunk app {spec.splunk_app}, {plural(len(members), 'file')}")
