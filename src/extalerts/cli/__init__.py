"""The ``extalerts`` command: a thin click shell over the library.

Importing this module imports only click and the error types, so ``extalerts --help`` stays fast;
every command imports what it needs when it runs.
"""

from __future__ import annotations

import os

import click

from extalerts import __version__
from extalerts.cli._errors import ExtalertsGroup
from extalerts.cli.coverage_command import coverage_command
from extalerts.cli.doctor_command import doctor_command
from extalerts.cli.drill_commands import drill_command, sandbox_command, send_command
from extalerts.cli.emulator_command import emulator_group
from extalerts.cli.engine_commands import replay_command, test_command
from extalerts.cli.package_command import package_command
from extalerts.cli.provider_commands import plan_command, push_command
from extalerts.cli.render_command import render_command
from extalerts.cli.spec_commands import schema_command, validate_command
from extalerts.cli.synth_command import synth_command
from extalerts.cli.verify_command import verify_command


def _verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().ensure_object(dict)["verbose"] = True


def _no_color(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # https://no-color.org: any non-empty NO_COLOR turns colour off, on a terminal too.
    if value or os.environ.get("NO_COLOR"):
        ctx.color = ctx.find_root().color = False


def global_options() -> list[click.Option]:
    """Options every command takes, before or after its name (``extalerts -v validate`` and
    ``extalerts validate -v`` alike): people add a flag at the end of the line they just ran."""
    return [
        click.Option(
            ["--verbose", "-v"],
            is_flag=True,
            expose_value=False,
            callback=_verbose,
            help="Show tracebacks for unexpected errors.",
        ),
        click.Option(
            ["--no-color"],
            is_flag=True,
            expose_value=False,
            callback=_no_color,
            help="No colour in the output (as when NO_COLOR is set).",
        ),
    ]


@click.group(cls=ExtalertsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="extalerts")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Alerting-as-code for Cloudflare Workers logs.

    Write each rule once in monitors/*.yaml; render it to Datadog monitors and a Splunk app.

    \b
    Examples:
      extalerts validate                      # check monitors/ and report every mistake
      extalerts render --provider all --out rendered/
      extalerts render --check --out rendered/ # fail when committed output is stale
      extalerts schema > schema/spec-v1.json  # JSON Schema for editors
    """
    ctx.ensure_object(dict).setdefault("verbose", False)


cli.add_command(validate_command)
cli.add_command(schema_command)
cli.add_command(render_command)
cli.add_command(plan_command)
cli.add_command(push_command)
cli.add_command(package_command)
cli.add_command(test_command)
cli.add_command(replay_command)
cli.add_command(synth_command)
cli.add_command(coverage_command)
cli.add_command(doctor_command)
cli.add_command(verify_command)
cli.add_command(emulator_group)
cli.add_command(sandbox_command)
cli.add_command(send_command)
cli.add_command(drill_command)


def _add_global_options(command: click.Command) -> None:
    command.params.extend(global_options())
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _add_global_options(subcommand)


_add_global_options(cli)


def main() -> None:
    cli(prog_name="extalerts")
