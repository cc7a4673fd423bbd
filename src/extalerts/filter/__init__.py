"""The provider-neutral filter language: parse once, compile to every backend."""

from extalerts.filter.ast import And, Expr, Not, Op, Or, Predicate, conjunction, fields_of, to_nnf
from extalerts.filter.parser import check, parse

__all__ = [
    "And",
    "Expr",
    "Not",
    "Op",
    "Or",
    "Predicate",
    "check",
    "conjunction",
    "fields_of",
    "parse",
    "to_nnf",
]
