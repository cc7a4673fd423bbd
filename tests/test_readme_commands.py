"""The README's command table says what `--help` says: the same commands, arguments and options."""

from __future__ import annotations

import re

import click
import pytest

from extalerts.cli import cli, global_options
from tests.conftest import REPO, cli_run

HELP_OPTIONS = {"-h", "--help"}
GLOBAL = {name for option in global_options() for name in option.opts}
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _commands_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Commands\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _table() -> dict[str, str]:
    """Each documented command path (``test``, ``emulator datadog``) with its cell, as written."""
    rows: dict[str, str] = {}
    for line in _commands_section().splitlines():
        if not line.startswith("| `extalerts "):
            continue
        cell = re.split(r"(?<!\\)\|", line)[1].strip().strip("`").replace("\\|", "|")
        words = cell.split()
        command = cli.commands.get(words[1])
        names = [words[1]]
        if isinstance(command, click.Group):
            names = [f"{words[1]} {sub}" for sub in words[2].split("|")]
        for name in names:
            assert name not in rows, f"{name} has two rows"
            rows[name] = cell
    return rows


def _help_commands() -> list[str]:
    """Every runnable command, as `extalerts --help` (and a group's --help) lists them."""

    def listed(*group: str) -> list[str]:
        _, out, _ = cli_run(*group, "--help")
        section = out.split("Commands:\n", 1)[1]
        return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split()]

    found = []
    for name in listed():
        sub = listed(name) if isinstance(cli.commands[name], click.Group) else []
        found.extend(f"{name} {s}" for s in sub) if sub else found.append(name)
    return found


def _help(path: str) -> tuple[list[str], list[set[str]]]:
    """A command's positional arguments (from its usage line) and its options, each as its names."""
    code, out, _ = cli_run(*path.split(), "--help")
    assert code == 0
    usage = out.splitlines()[0]
    arguments = re.findall(r"[A-Z][A-Z_]+", usage.split("[OPTIONS]", 1)[1])
    options = []
    section = out.split("Options:\n", 1)[1]
    for line in section.splitlines():
        if line.startswith("  -"):
            options.append(set(OPTION.findall(line.strip().split("  ")[0])))
    return arguments, options


def test_every_command_in_help_has_a_row_and_every_row_a_command() -> None:
    assert sorted(_table()) == sorted(_help_commands())


@pytest.mark.parametrize("path", sorted(_table()))
def test_a_row_has_the_arguments_and_options_of_help(path: str) -> None:
    cell = _table()[path]
    arguments, options = _help(path)
    for argument in arguments:
        assert re.search(rf"\b{argument}\b", cell), f"{path}: {argument} (from --help) is not in the README row"
    known = set().union(*options)
    documented = set(OPTION.findall(cell)) - {"--"}  # `--` separates sandbox's COMMAND
    assert documented <= known, f"{path}: the README row has options --help does not: {documented - known}"
    for names in options:
        if names & (HELP_OPTIONS | GLOBAL):
            continue
        assert names & documented, f"{path}: {'/'.join(sorted(names))} (from --help) is not in the README row"
    assert known >= GLOBAL, f"{path}: --help lacks the global options"


def test_the_global_options_are_documented_under_the_table() -> None:
    section = _commands_section()
    for name in GLOBAL:
        assert f"`{name}" in section or f"/{name}`" in section, name
