"""The exception tree. Every error extalerts raises on purpose is an :class:`ExtalertsError`.

Errors carry a :class:`Location` where one is known, so the CLI can print ``path:line:col: message``.
Only the CLI turns these into exit codes and user messages (``extalerts.cli._errors``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from extalerts.wording import plural


@dataclass(frozen=True, order=True)
class Location:
    """A place in a spec file. ``line`` and ``column`` are 1-based; 0 means unknown."""

    path: Path
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        text = _display_path(self.path)
        if self.line:
            text += f":{self.line}"
            if self.column:
                text += f":{self.column}"
        return text


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class ExtalertsError(Exception):
    """Root of every error extalerts raises on purpose."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in the spec, with where it is and, when we can guess, how to fix it."""

    location: Location
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(ExtalertsError):
    """The spec has one or more problems. All of them are collected before this is raised."""

    def __init__(self, issues: Iterable[SpecIssue]) -> None:
        self.issues: tuple[SpecIssue, ...] = tuple(sorted(issues, key=lambda i: (i.location, i.message)))
        super().__init__(self._summary())

    #: What the issues are in, for the summary line.
    subject = "the spec"

    def _summary(self) -> str:
        count = len(self.issues)
        lines = [str(issue) for issue in self.issues]
        lines.append(f"{count} error{'s' if count != 1 else ''} in {self.subject}")
        return "\n".join(lines)


class TestFileError(SpecError):
    """Rule test files (``monitors/tests/``) have one or more problems, all collected."""

    __test__ = False  # not a pytest test class, whatever its name
    subject = "the rule tests"


class FilterSyntaxError(ExtalertsError):
    """A filter expression does not parse. ``offset`` is the 0-based character position in the text."""

    def __init__(self, message: str, offset: int, hint: str = "") -> None:
        self.message = message
        self.offset = offset
        self.hint = hint
        super().__init__(f"{message} at character {offset + 1}")


class FilterFieldError(ExtalertsError):
    """A filter names an unknown field or uses an operator its type does not allow."""

    def __init__(self, message: str, offset: int, hint: str = "") -> None:
        self.message = message
        self.offset = offset
        self.hint = hint
        super().__init__(message)


class CannotPushDownError(ExtalertsError):
    """A filter cannot be expressed in a target language (e.g. Logpush cannot filter on ``Event``)."""


class RenderError(ExtalertsError):
    """A rendered document failed its own checks; this is a bug in a template or in extalerts."""

    def __init__(self, document: str, problems: Sequence[str]) -> None:
        self.document = document
        self.problems = tuple(problems)
        joined = "; ".join(self.problems)
        super().__init__(f"{document}: {joined}")


class TemplateError(ExtalertsError):
    """A Jinja template is missing or failed to render."""


class StaleOutputError(ExtalertsError):
    """``render --check`` found files that differ from what the spec renders to."""

    def __init__(self, changed: Sequence[str]) -> None:
        self.changed = tuple(changed)
        super().__init__(
            f"{plural(len(self.changed), 'rendered file')} {'is' if len(self.changed) == 1 else 'are'} stale"
        )


class ConfigError(ExtalertsError):
    """Missing or invalid settings, e.g. a credential that is not in the environment."""


class ProviderError(ExtalertsError):
    """A provider API call failed for good (after retries, or with an error that retrying cannot fix)."""


class ApiError(ProviderError):
    """The provider answered with an error status. ``errors`` are the provider's own messages;
    ``hint`` says what to check (e.g. which variables hold the credentials, on 401/403)."""

    def __init__(
        self, operation: str, status: int, errors: Sequence[str], request_id: str | None = None, hint: str = ""
    ) -> None:
        self.operation = operation
        self.status = status
        self.errors = tuple(errors)
        self.request_id = request_id
        self.hint = hint
        detail = "; ".join(self.errors) or "no error message"
        suffix = f" (request id {request_id})" if request_id else ""
        advice = f"; {hint}" if hint else ""
        super().__init__(f"{operation}: HTTP {status}: {detail}{suffix}{advice}")


class NetworkError(ProviderError):
    """A request got no HTTP answer: the URL it went to (never with credentials), where that URL
    came from (``url_source``, e.g. ``--api-url``), what happened and what to try."""

    def __init__(self, operation: str, url: str, url_source: str, problem: str, fix: str, attempts: int) -> None:
        self.operation = operation
        self.url = url
        self.url_source = url_source
        self.problem = problem
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{operation}: {url}: {problem}{tries}; {fix} (URL from {url_source})")


class ServerStartError(ExtalertsError):
    """A local server (an emulator, the sandbox) could not listen where it was asked to."""
