"""``extalerts validate`` and ``extalerts schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from extalerts.cli.options import output_option, plural, resolve_paths, spec_paths

if TYPE_CHECKING:
    from extalerts.errors import SpecIssue


@click.command("validate")
@spec_paths
@output_option
def validate_command(paths: tuple[Path, ...], output: str) -> None:
    """Check spec files and report every problem at once.

    PATHS are files or directories (default: monitors/). Each problem is printed as
    path:line:col: message (hint). Exits 1 when there is any. Warnings (a problem for one
    provider only, e.g. a PagerDuty target a Splunk alert cannot page) are printed too and do not
    change the exit code; that provider's push refuses.

    \b
    Example:
      extalerts validate monitors/ --output json
    """
    from extalerts.errors import SpecError
    from extalerts.spec import load_spec

    try:
        spec = load_spec(resolve_paths(paths))
    except SpecError as error:
        if output == "json":
            issues = [_issue_json(i) for i in error.issues]
            click.echo(json.dumps({"ok": False, "errors": issues}, indent=2))
            raise click.exceptions.Exit(1) from None
        raise
    if output == "json":
        warnings = [_issue_json(i) for i in spec.warnings]
        document = {"ok": True, "files": [str(f) for f in spec.files], "rules": len(spec.rules), "warnings": warnings}
        click.echo(json.dumps(document, indent=2))
    else:
        # Problems for one provider only (e.g. Splunk paging): that provider's push refuses, so say so now.
        for warning in spec.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"ok: {plural(len(spec.rules), 'rule')} in {plural(len(spec.files), 'file')}")


def _issue_json(issue: SpecIssue) -> dict[str, object]:
    where = issue.location
    return {
        "path": str(where.path),
        "line": where.line,
        "column": where.column,
        "message": issue.message,
        "hint": issue.hint,
    }


@click.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of a spec file, for editors (yaml-language-server).

    \b
    Example:
      extalerts schema > schema/spec-v1.json
      # then, first line of a spec file:
      # yaml-language-server: $schema=../schema/spec-v1.json
    """
    from extalerts.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))
