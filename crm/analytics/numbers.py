"""How analytics rounds: money to cents, percentages and days to one decimal."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
TENTH = Decimal("0.1")


def money(value: object) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT, ROUND_HALF_UP)


def percent(part: object, whole: object) -> Decimal | None:
    """Return part ÷ whole as a percentage with one decimal, or None when whole is zero."""
    whole_d = Decimal(str(whole or 0))
    if whole_d == 0:
        return None
    return (Decimal(str(part or 0)) * 100 / whole_d).quantize(TENTH, ROUND_HALF_UP)


def days(seconds: object) -> Decimal | None:
    """Return seconds as days with one decimal."""
    if seconds is None:
        return None
    return (Decimal(str(seconds)) / 86400).quantize(TENTH, ROUND_HALF_UP)
