"""Numbers as provider query languages want them: plain decimals, never exponent notation."""

from __future__ import annotations

from decimal import Decimal


def format_number(value: int | float) -> str:
    """``5`` → ``"5"``, ``5.0`` → ``"5"``, ``5e-05`` → ``"0.00005"``, ``1.5`` → ``"1.5"``."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number here")
    if isinstance(value, int):
        return str(value)
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")
