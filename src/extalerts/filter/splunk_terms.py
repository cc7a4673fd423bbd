"""Words every event a filter accepts must contain: the rule's base-search terms in Splunk.

A base search of ``index=… sourcetype=…`` alone reads and parses every event of the window. Terms
after it let the index narrow the events first; the exact filter still runs afterwards as ``| where``.
So a term may only be emitted when every event the filter accepts contains it: terms are a superset
condition, never a second filter. When unsure, no term.

How Splunk matches a bare term (defaults, ``segmenters.conf.spec`` 9.2 in
splunk/vscode-extension-splunk ``spec_files/9.2/segmenters.conf.spec``): an event is split at major
breakers (``[ ] < > ( ) { } | ! ; , ' " * \\n \\r \\s \\t & ? +`` …), then at minor breakers
(``/ : = @ . - $ # % \\ _``): "for each minor breaker found, Splunk indexes the token from the last major
breaker to the current minor breaker and from the last minor breaker to the current minor breaker";
``LOOKAHEAD`` "Default: -1 (read the whole event)". Search Manual, "Use CASE() and TERM() to match
phrases": "By default, searches are case-insensitive". So a run of ASCII letters and digits with a
breaker on each side is an indexed token, found by a quoted term whatever its case. ``TERM()`` is not
used: it needs major breakers around the term, and a value in the structured line sits between ``\\"``
(a minor breaker, the JSON escape) and ``"``.

What this relies on, from the event as Logpush writes it (JSON, one event per line):

* A string value appears in ``_raw`` JSON-encoded, and twice encoded inside the structured line's
  ``Message`` string. Encoding never touches ASCII letters and digits, and writes ``"`` and ``\\`` with
  a backslash before them, both breakers. The characters an encoder may turn into letters (``\\n``,
  ``\\t``, ``\\u003c`` for ``<``, non-ASCII as ``\\uXXXX``) are not trusted as boundaries.
* ``==``/``in`` on a text field: the whole value is a JSON string, so its first and last words are
  bounded by the quotes around it. ``contains``: only the words bounded inside the searched text.
* Numbers and booleans: no term (a number has more than one spelling, ``500`` or ``5e2``).
* ``and``: every child's words; ``or``: only the words common to every branch; ``not``: none.
"""

from __future__ import annotations

import re

from extalerts.fields import FieldCatalog, FieldType
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, to_nnf

#: Breakers (major and minor, default segmenters.conf) that JSON encoders write as themselves or after a
#: backslash, itself a breaker. Not ``< > &`` (Go's encoder writes ``\u003c``…) nor tab/newline (``\t``).
SAFE_BREAKERS = frozenset(" []{}()|!;,'\"*?+/:=@.-$#%\\_")
_WORD = re.compile(r"[A-Za-z0-9]+")
#: Shorter words narrow nothing (``do`` of ``do_op`` is in most structured lines) and only add noise.
MIN_TERM_LENGTH = 3
_TEXT_TYPES = (FieldType.STRING, FieldType.STRING_LIST)


def value_words(text: str, *, whole_value: bool) -> list[str]:
    """Words of ``text`` that are tokens of any event containing it: runs of ASCII letters and digits
    with a safe breaker on both sides. ``whole_value``: ``text`` is a complete JSON string, so its ends
    are bounded by quotes; otherwise (a substring) the words touching its ends are left out."""
    words: list[str] = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        left_ok = text[start - 1] in SAFE_BREAKERS if start > 0 else whole_value
        right_ok = text[end] in SAFE_BREAKERS if end < len(text) else whole_value
        if left_ok and right_ok and len(match.group()) >= MIN_TERM_LENGTH:
            words.append(match.group())
    return words


def _predicate_terms(pred: Predicate, catalog: FieldCatalog) -> dict[str, str]:
    if pred.negated or catalog[pred.field].type not in _TEXT_TYPES:
        return {}
    match pred.op:
        case Op.EQ if isinstance(pred.value, str):
            return _keyed(value_words(pred.value, whole_value=True))
        case Op.IN if isinstance(pred.value, tuple):
            return _common([_keyed(value_words(str(v), whole_value=True)) for v in pred.value])
        case Op.CONTAINS if isinstance(pred.value, str):
            return _keyed(value_words(pred.value, whole_value=False))
    return {}


def _keyed(words: list[str]) -> dict[str, str]:
    """Words by their lower-case form: terms match case-insensitively, so ``Foo`` and ``foo`` are one."""
    keyed: dict[str, str] = {}
    for word in words:
        keyed.setdefault(word.lower(), word)
    return keyed


def _common(branches: list[dict[str, str]]) -> dict[str, str]:
    if not branches:
        return {}
    shared = set(branches[0]).intersection(*branches[1:])
    return {key: word for key, word in branches[0].items() if key in shared}


def _terms(expr: Expr, catalog: FieldCatalog) -> dict[str, str]:
    match expr:
        case Predicate():
            return _predicate_terms(expr, catalog)
        case And(items):
            found: dict[str, str] = {}
            for item in items:
                for key, word in _terms(item, catalog).items():
                    found.setdefault(key, word)
            return found
        case Or(items):
            return _common([_terms(item, catalog) for item in items])
    raise TypeError(f"expected NNF, got {expr!r}")  # pragma: no cover


def required_terms(expr: Expr | None, catalog: FieldCatalog) -> list[str]:
    """Words every event ``expr`` accepts contains as an indexed token, in filter order; none for no filter."""
    if expr is None:
        return []
    return list(_terms(to_nnf(expr), catalog).values())


def base_search_terms(expr: Expr | None, catalog: FieldCatalog) -> str:
    """The terms as they go after ``index=… sourcetype=…``: each quoted, so a word such as ``NOT`` or
    ``OR`` stays a word (the words hold only letters and digits, nothing to escape)."""
    return " ".join(f'"{word}"' for word in required_terms(expr, catalog))
