"""The commission arithmetic: bases split into attainment tiers, rates, coefficients, rounding.

Money is Decimal throughout. Tier thresholds (target x tier %) and every line amount are rounded
to the cent with ROUND_HALF_UP; a statement's total is the exact sum of its rounded lines, so
the lines always add up to the total shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
NO_TARGET = "no target"


def money(value: Decimal) -> Decimal:
    """Round to the cent, halves away from zero (2.345 -> 2.35)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Tier:
    """An attainment band: from `lower_pct` up to `upper_pct` (None: no upper end)."""

    lower_pct: Decimal
    upper_pct: Decimal | None
    multiplier: Decimal

    @property
    def label(self) -> str:
        lower = _pct_text(self.lower_pct)
        if self.upper_pct is None:
            return f">{lower}%" if self.lower_pct else "all"
        return f"{lower}-{_pct_text(self.upper_pct)}%"


def _pct_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def build_tiers(bands: Iterable[tuple[Decimal, Decimal]]) -> list[Tier]:
    """Turn (lower %, multiplier) pairs into bands; the first must start at 0 %."""
    ordered = sorted(bands)
    if not ordered or ordered[0][0] != 0:
        raise ValueError("the first tier must start at 0 %")
    uppers: list[Decimal | None] = [lower for lower, _ in ordered[1:]]
    uppers.append(None)
    return [Tier(lower, upper, mult) for (lower, mult), upper in zip(ordered, uppers, strict=True)]


@dataclass(frozen=True)
class Contribution:
    """A receipt or won deal that adds to a rep's base."""

    kind: str  # receipt | deal
    source_id: int
    label: str
    occurred_on: date
    amount: Decimal


@dataclass(frozen=True)
class LineFigure:
    contribution: Contribution
    base: Decimal  # the part of the contribution that falls in `tier`
    tier: str
    multiplier: Decimal
    amount: Decimal


def split_into_tiers(
    contributions: Sequence[Contribution], target: Decimal | None, tiers: Sequence[Tier]
) -> list[tuple[Contribution, Decimal, Tier | None]]:
    """Cut each contribution where the running total crosses a tier threshold.

    Contributions count in date order; the part of one that lies between two thresholds
    (target x tier %, rounded to the cent) belongs to that tier. Without a target every
    contribution is one slice with no tier.
    """
    ordered = sorted(contributions, key=lambda c: (c.occurred_on, c.kind, c.source_id))
    if not target or target <= 0:
        return [(c, c.amount, None) for c in ordered]
    thresholds = [money(target * t.lower_pct / HUNDRED) for t in tiers]
    slices: list[tuple[Contribution, Decimal, Tier | None]] = []
    running = Decimal(0)
    for contribution in ordered:
        remaining = contribution.amount
        while remaining > 0:
            index = max(i for i, start in enumerate(thresholds) if start <= running)
            room = thresholds[index + 1] - running if index + 1 < len(tiers) else remaining
            part = min(remaining, room)
            slices.append((contribution, part, tiers[index]))
            running += part
            remaining -= part
    return slices


def commission_lines(
    contributions: Sequence[Contribution],
    *,
    target: Decimal | None,
    tiers: Sequence[Tier],
    rate: Decimal,
    coefficient: Decimal,
) -> list[LineFigure]:
    """Return one line per tier slice: base x rate x tier multiplier x coefficient, to the cent."""
    lines = []
    for contribution, part, tier in split_into_tiers(contributions, target, tiers):
        multiplier = tier.multiplier if tier is not None else Decimal(1)
        lines.append(
            LineFigure(
                contribution,
                part,
                tier.label if tier is not None else NO_TARGET,
                multiplier,
                money(part * rate * multiplier * coefficient),
            )
        )
    return lines


def attainment_pct(achieved: Decimal, target: Decimal | None) -> Decimal | None:
    """Return achieved / target in per cent, to two places (None without a target)."""
    if not target or target <= 0:
        return None
    return money(achieved * HUNDRED / target)


def cap_correction(subtotal: Decimal, cap: Decimal | None) -> Decimal:
    """Return the (negative) correction that brings a subtotal down to the plan's cap, or 0."""
    if cap is None or subtotal <= cap:
        return Decimal(0)
    return cap - subtotal
