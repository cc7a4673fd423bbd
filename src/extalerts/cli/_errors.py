"""The one place where library errors become messages and exit codes.

Exit codes: 0 success, 1 a problem in the input or with a provider, 2 wrong usage (click's own).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from extalerts.errors import ExtalertsError, SpecError, StaleOutputError, TestFileError
from extalerts.wording import plural

NEXT_STEPS: dict[type[ExtalertsError], str] = {
    SpecError: "fix the spec and run `extalerts validate` again",
    TestFileError: "fix the test files and run `extalerts test` again",
    StaleOutputError: "run `make render` (or `extalerts render --out DIR`) and commit the result",
}


def describe(error: ExtalertsError) -> list[str]:
    """The lines to print for ``error``: what is wrong, where, and what to do next."""
    if isinstance(error, SpecError):
        lines = [str(issue) for issue in error.issues]
        count = len(error.issues)
        step = NEXT_STEPS.get(type(error), NEXT_STEPS[SpecError])
        lines.append(f"error: {count} problem{'s' if count != 1 else ''} in {error.subject}; {step}")
        return lines
    if isinstance(error, StaleOutputError):
        lines = [f"stale: {path}" for path in error.changed]
        lines.append(
            f"error: {plural(len(error.changed), 'rendered file')} "
            f"{'differs' if len(error.changed) == 1 else 'differ'} from the spec; {NEXT_STEPS[StaleOutputError]}"
        )
        return lines
    return [f"error: {error}"]


class ExtalertsGroup(click.Group):
    """Runs commands and maps :class:`ExtalertsError` to a message on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExtalertsError as error:
            for line in describe(error):
                click.echo(line, err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; run the command again to complete what it started", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if (ctx.obj or {}).get("verbose"):
                raise
            click.echo(f"error: unexpected {type(error).__name__}: {error}", err=True)
            click.echo("This is a bug in extalerts; run again with --verbose for the traceback.", err=True)
            sys.exit(1)
