"""Compile a filter to an SPL ``eval``/``where`` expression.

Fields are referred to by their ``splunk_name``: the search extracts each with ``spath`` first
(see ``extalerts.render.splunk``), which sidesteps the auto-extraction cutoff on large events and
keeps names free of characters that would need quoting.
"""

from __future__ import annotations

import re

from extalerts.fields import Field, FieldCatalog, FieldType
from extalerts.filter.ast import And, Expr, Op, Or, Predicate, Scalar, to_nnf
from extalerts.numbers import format_number

_ORDERING = {Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
#: PCRE's end of subject.
END_OF_TEXT = "\\z"


def spl_string(text: str) -> str:
    """A double-quoted SPL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def spl_value(value: Scalar) -> str:
    if isinstance(value, bool):
        # Extracted JSON booleans are the strings "true" / "false" in Splunk.
        return spl_string("true" if value else "false")
    if isinstance(value, int | float):
        return format_number(value)
    return spl_string(value)


def _regex_literal(pattern: str) -> str:
    return spl_string(pattern)


def _positive(pred: Predicate, field: Field) -> str:
    name = field.splunk_name
    is_list = field.type is FieldType.STRING_LIST
    match pred.op:
        case Op.EXISTS:
            # mvcount of a field with no values is null, not 0: guard it so NOT stays two-valued.
            return f"isnotnull({name}) AND mvcount({name})>0" if is_list else f'isnotnull({name}) AND {name}!=""'
        case Op.CONTAINS:
            assert isinstance(pred.value, str)
            pattern = _regex_literal(re.escape(pred.value))
            return f"isnotnull(mvfind({name}, {pattern}))" if is_list else f"match({name}, {pattern})"
        case Op.EQ:
            assert pred.value is not None
            assert not isinstance(pred.value, tuple)
            if is_list:
                # \z, not $: in PCRE $ also matches before a final newline.
                pattern = _regex_literal("^" + re.escape(str(pred.value)) + END_OF_TEXT)
                return f"isnotnull(mvfind({name}, {pattern}))"
            return f"{name}={spl_value(pred.value)}"
        case Op.IN:
            assert isinstance(pred.value, tuple)
            if is_list:
                alternatives = "|".join(re.escape(str(v)) for v in pred.value)
                return f"isnotnull(mvfind({name}, {_regex_literal('^(?:' + alternatives + ')' + END_OF_TEXT)}))"
            return f"in({name}, " + ", ".join(spl_value(v) for v in pred.value) + ")"
        case Op.LT | Op.LE | Op.GT | Op.GE:
            assert isinstance(pred.value, int | float)
            return f"{name}{_ORDERING[pred.op]}{spl_value(pred.value)}"
    raise AssertionError(pred.op)  # pragma: no cover


def _predicate(pred: Predicate, field: Field) -> str:
    positive = _positive(pred, field)
    if not pred.negated:
        return positive
    # A missing field makes an SPL comparison null, and NOT null is still null (false in `where`);
    # guarding with isnotnull keeps the negation two-valued like every other backend.
    if pred.op is Op.EXISTS:
        return f"NOT ({positive})"
    return f"NOT (isnotnull({field.splunk_name}) AND {positive})"


def _compile(expr: Expr, catalog: FieldCatalog, nested: bool) -> str:
    match expr:
        case Predicate():
            text = _predicate(expr, catalog[expr.field])
            return f"({text})" if nested and (" AND " in text or " OR " in text) else text
        case And(items) | Or(items):
            joiner = " AND " if isinstance(expr, And) else " OR "
            text = joiner.join(_compile(item, catalog, True) for item in items)
            return f"({text})" if nested else text
    raise TypeError(f"expected NNF, got {expr!r}")  # pragma: no cover


def to_splunk(expr: Expr, catalog: FieldCatalog) -> str:
    """An SPL boolean expression for ``where``/``eval`` over the ``splunk_name`` fields."""
    return _compile(to_nnf(expr), catalog, nested=False)
