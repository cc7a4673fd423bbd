"""Options shared by commands."""

from __future__ import annotations

from collections.abc import Callable
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


def resolve_paths(paths: tuple[Path, ...]) -> list[Path]:
    return list(paths) if paths else [DEFAULT_SPEC_DIR]
