"""Rendered files as values, and writing them deterministically."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extalerts.errors import StaleOutputError


@dataclass(frozen=True)
class RenderedFile:
    """One output file: a POSIX path relative to the output directory and its exact text."""

    path: str
    content: str
    rule_id: str | None = None


def canonical_json(document: Any) -> str:
    """Sorted keys, two-space indent, trailing newline: the same input always gives the same bytes."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale_files(files: Iterable[RenderedFile], out: Path, owned_dirs: Iterable[str]) -> list[str]:
    """Paths that differ from disk, are missing, or exist on disk under ``owned_dirs`` but are no longer rendered."""
    expected = {f.path: f.content for f in files}
    changed = []
    for path, content in expected.items():
        target = out / path
        if not target.is_file() or target.read_text(encoding="utf-8") != content:
            changed.append(path)
    for directory in owned_dirs:
        root = out / directory
        if root.is_dir():
            for existing in root.rglob("*"):
                relative = existing.relative_to(out).as_posix()
                if existing.is_file() and relative not in expected:
                    changed.append(relative)
    return sorted(changed)


def write_files(
    files: Iterable[RenderedFile], out: Path, owned_dirs: Iterable[str], *, check: bool = False
) -> list[str]:
    """Write ``files`` under ``out``; remove files under ``owned_dirs`` that are no longer rendered.

    With ``check``, write nothing and raise :class:`StaleOutputError` if anything would change.
    Returns the paths written or removed.
    """
    files = list(files)
    owned = list(owned_dirs)
    changed = stale_files(files, out, owned)
    if check:
        if changed:
            raise StaleOutputError(changed)
        return []
    expected = {f.path for f in files}
    for file in files:
        if file.path in changed:
            target = out / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content, encoding="utf-8", newline="\n")
    for path in changed:
        if path not in expected:
            (out / path).unlink()
    for directory in owned:
        root = out / directory
        if root.is_dir():
            for sub in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
                if not any(sub.iterdir()):
                    sub.rmdir()
    return changed
