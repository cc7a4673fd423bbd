"""Read and write Splunk ``.conf`` text: stanzas of ``key = value`` with backslash line continuation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Stanza:
    name: str
    settings: list[tuple[str, str]] = field(default_factory=list)
    line: int = 0

    def as_dict(self) -> dict[str, str]:
        return dict(self.settings)


class ConfSyntaxError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}")


def parse_conf(text: str) -> list[Stanza]:
    """Parse ``.conf`` text the way Splunk reads it: a value continues onto the next line after a
    trailing backslash, and the newline is kept. Settings before the first stanza belong to ``default``.
    Duplicate keys in a stanza are an error (Splunk silently keeps the last one)."""
    stanzas: list[Stanza] = [Stanza("default")]
    keys: set[str] = set()
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        number = index + 1
        raw = lines[index]
        index += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                raise ConfSyntaxError(number, "stanza header without a closing ]")
            stanzas.append(Stanza(stripped[1:-1], line=number))
            keys = set()
            continue
        if "=" not in stripped:
            raise ConfSyntaxError(number, f"expected `key = value`, found {stripped[:40]!r}")
        key, _, value = raw.partition("=")
        key = key.strip()
        if not key:
            raise ConfSyntaxError(number, "empty key")
        parts = [value.strip()]
        while parts[-1].endswith("\\") and index < len(lines):
            parts[-1] = parts[-1][:-1].rstrip()
            parts.append(lines[index].strip())
            index += 1
        if key in keys:
            raise ConfSyntaxError(number, f"duplicate key {key!r} in [{stanzas[-1].name}]")
        keys.add(key)
        stanzas[-1].settings.append((key, "\n".join(parts)))
    if not stanzas[0].settings:
        stanzas.pop(0)
    return stanzas
