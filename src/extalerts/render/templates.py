"""The one Jinja environment: strict, sandboxed, with named filters.

Templates ship inside the wheel as ``extalerts/templates``; a source checkout reads the repository's
``templates/`` directory. ``--templates DIR`` puts a directory in front of both, so a team can
override one template and keep the rest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateNotFound, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from extalerts.errors import TemplateError
from extalerts.numbers import format_number


def builtin_templates_dir() -> Path:
    """Where the shipped templates are: package data in a wheel, ``templates/`` in a checkout."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "templates"
    if checkout.is_dir():
        return checkout
    raise TemplateError(f"the built-in templates are missing (looked in {packaged} and {checkout})")


def conf_value(value: Any) -> str:
    """A ``.conf`` value: booleans as 1/0, and multi-line text continued with a trailing backslash."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    return " \\\n".join(text.split("\n"))


def datadog_variable(name: str) -> str:
    """A Datadog message template tag, e.g. ``dd("#is_alert")`` → ``{{#is_alert}}``.

    Datadog's template syntax collides with Jinja's, so templates write Datadog tags through this.
    """
    return "{{" + name + "}}"


def tojson_sorted(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@cache
def _environment(search_path: tuple[str, ...]) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=ChoiceLoader([FileSystemLoader(path) for path in search_path]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["tojson"] = tojson_sorted
    env.filters["conf_value"] = conf_value
    env.filters["number"] = format_number
    env.globals["dd"] = datadog_variable
    return env


class Templates:
    """Renders named templates from the override directory (if any) and the built-in ones."""

    def __init__(self, override: Path | None = None) -> None:
        paths: list[str] = []
        if override is not None:
            if not override.is_dir():
                raise TemplateError(f"--templates {override}: not a directory")
            paths.append(str(override))
        paths.append(str(builtin_templates_dir()))
        self.search_path: Sequence[str] = tuple(paths)
        self.env = _environment(tuple(paths))

    def render(self, name: str, /, **context: Any) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except TemplateNotFound as exc:
            raise TemplateError(f"template {name} not found in {', '.join(self.search_path)}") from exc
        except UndefinedError as exc:
            raise TemplateError(f"template {name}: {exc.message}") from exc
        except Exception as exc:  # a template bug or a filter failure: name the template
            raise TemplateError(f"template {name}: {exc}") from exc
