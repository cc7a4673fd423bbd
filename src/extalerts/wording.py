"""Counts in messages: ``1 rule``, ``2 rules``, never ``rule(s)``."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 rule``, ``2 rules``, ``1,024 events``: a count with its noun in the right number."""
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"
