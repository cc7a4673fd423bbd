"""Options shared by commands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SPEC_DIR = Path("monitors")


def spec_paths(fn: F) -> F:
    """``[PATH]...``: spec files or directories, default ``monitors/``."""
    return click.argument("paths", nargs=-1, type=click.Path(path_type=Path))(fn)


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


def resolve_paths(paths: tuple[Path, ...]) -> list[Path]:
    return list(paths) if paths else [DEFAULT_SPEC_DIR]
