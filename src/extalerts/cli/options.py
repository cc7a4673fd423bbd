"""Options shared by commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from extalerts.wording import plural as plural  # re-exported: the CLI modules take it from here

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SPEC_DIR = Path("monitors")


def spec_paths(fn: F) -> F:
    """``[PATH]...``: spec files or directories, default ``monitors/``."""
    return click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]...")(fn)


def output_option(fn: F) -> F:
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, json for scripts.",
    )(fn)


def text_table(rows: Sequence[Sequence[str]], *, header_rule: bool = True) -> str:
    """Left-aligned columns two spaces apart; the first row is the header, underlined with dashes."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if header_rule:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def stderr_progress(length: int, label: str, *, show_percent: bool = False, show_pos: bool = False) -> ProgressBar[int]:
    """A progress bar on standard error, drawn only when that is a terminal: progress is for a person
    watching, never for a log file or a pipe (nor for standard output, which stays for results)."""
    return click.progressbar(
        length=length,
        label=label,
        file=sys.stderr,
        show_percent=show_percent,
        show_pos=show_pos,
        hidden=not sys.stderr.isatty(),
    )


def resolve_paths(paths: tuple[Path, ...]) -> list[Path]:
    return list(paths) if paths else [DEFAULT_SPEC_DIR]


def yes_option(what: str) -> Callable[[F], F]:
    """``--yes/-y``: skip the question :func:`confirm_or_refuse` asks before ``what``."""
    return click.option(
        "--yes", "-y", is_flag=True, help=f"Do not ask before {what}; required when standard input is not a terminal."
    )


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def confirm_or_refuse(command: str, action: str, question: str, *, yes: bool) -> None:
    """The one rule for every command that writes to a provider: ask on a terminal; where nobody can
    answer (a pipe, ``</dev/null``, CI), refuse unless ``--yes``, as Terraform does without
    -auto-approve, so that an unattended run never changes a provider by accident."""
    from extalerts.errors import ConfigError

    if yes:
        return
    if not stdin_is_terminal():
        raise ConfigError(
            f"extalerts {command}: standard input is not a terminal, so it cannot ask before {action}; "
            "pass --yes to go ahead"
        )
    if not click.confirm(question, default=False, err=True):
        raise click.Abort
