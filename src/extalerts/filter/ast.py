"""The provider-neutral filter AST.

Semantics, shared by every backend:

* A predicate on a field that is missing (or null) is false; ``not`` is plain negation, so
  ``Outcome != "ok"`` is true for an event without ``Outcome``.
* On a list field (``Logs.Message``, ``ScriptTags`` …) a predicate holds when it holds for any element.
* ``contains`` is a case-sensitive substring test; ``exists`` means present and not empty.

Backends compile the negation normal form (:func:`to_nnf`): ``not`` only ever sits on a predicate,
as its ``negated`` flag, so each backend only has to know how to write a predicate and its negation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

Scalar = str | int | float | bool


class Op(StrEnum):
    EQ = "=="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    CONTAINS = "contains"
    EXISTS = "exists"


ORDERING_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})


@dataclass(frozen=True)
class Predicate:
    """``field op value``; ``value`` is a tuple for ``in`` and ``None`` for ``exists``."""

    field: str
    op: Op
    value: Scalar | tuple[Scalar, ...] | None
    negated: bool = False
    #: 0-based character offset of the predicate in the source text, for error messages.
    offset: int = 0

    def negate(self) -> Predicate:
        return replace(self, negated=not self.negated)


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Predicate | And | Or | Not


def to_nnf(expr: Expr, negate: bool = False) -> Expr:
    """Push every ``not`` down onto predicates (De Morgan), flattening nested and/or."""
    match expr:
        case Predicate():
            return expr.negate() if negate else expr
        case Not(item):
            return to_nnf(item, not negate)
        case And(items) | Or(items):
            children = tuple(to_nnf(item, negate) for item in items)
            keep_and = isinstance(expr, And) != negate
            cls: type[And] | type[Or] = And if keep_and else Or
            flat: list[Expr] = []
            for child in children:
                if isinstance(child, cls):
                    flat.extend(child.items)
                else:
                    flat.append(child)
            return cls(tuple(flat))
    raise TypeError(f"not a filter expression: {expr!r}")  # pragma: no cover - exhaustive match


def predicates(expr: Expr) -> list[Predicate]:
    """Every predicate in the expression, in source order."""
    match expr:
        case Predicate():
            return [expr]
        case Not(item):
            return predicates(item)
        case And(items) | Or(items):
            return [p for item in items for p in predicates(item)]
    raise TypeError(f"not a filter expression: {expr!r}")  # pragma: no cover


def fields_of(expr: Expr | None) -> list[str]:
    """Field names the expression reads, deduplicated, in first-use order."""
    if expr is None:
        return []
    return list(dict.fromkeys(p.field for p in predicates(expr)))


def conjunction(*exprs: Expr | None) -> Expr | None:
    """``a and b`` of the given expressions, skipping ``None``; ``None`` when none is left."""
    present = [e for e in exprs if e is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return And(tuple(present))
