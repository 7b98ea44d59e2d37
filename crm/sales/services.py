"""Opportunities: stages and win rates from the running process, overrides that stick, closing."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.analytics.rollup import refresh_funnel_deal
from crm.customers.models import Contact, Customer
from crm.directory.models import User
from crm.directory.services import can_see_owner, manager_of, notify
from crm.errors import Conflict, NotFound, fields_error
from crm.quotes.models import Quote
from crm.sales.models import PIPELINES, Opportunity, StageChange

CURRENCIES = ("CNY", "USD", "EUR", "HKD", "JPY")
# The exit criteria of the shipped stages, used when a pipeline process does not list its own
# (processes made by the stage editor pass them to crm.check_stage_exit as `criteria`).
EXIT_CRITERIA: dict[str, list[str]] = {
    "needs_analysis": ["decision_maker"],
    "proposal": ["approved_quote"],
    "negotiation": ["accepted_quote"],
    "closing": ["accepted_quote"],
    "renewal_quote": ["approved_quote"],
}
# Every criterion the CRM can check, with what it reports when the criterion is not met.
EXIT_CHECK_TEXT = {
    "decision_maker": "a decision maker among the customer's contacts",
    "approved_quote": "an approved quote",
    "accepted_quote": "a quote accepted by the customer",
}


def parse_amount(value: Any, field: str = "amount") -> Decimal:
    """Return a positive money amount with at most two decimals, or raise naming the field."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise fields_error(**{field: f"'{value}' is not a number"}) from None
    if not amount.is_finite():
        raise fields_error(**{field: f"'{value}' is not a number"})
    if amount <= 0:
        raise fields_error(**{field: "must be greater than zero"})
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise fields_error(**{field: "has more than two decimals"})
    if amount >= Decimal("1e12"):
        raise fields_error(**{field: "is too large"})
    return amount


def create_opportunity(
    session: Session,
    owner: User,
    customer_id: int,
    name: str,
    amount: Any,
    *,
    now: datetime,
    pipeline: str = "new_business",
    currency: str = "CNY",
    expected_close: date | None = None,
    lead_id: int | None = None,
) -> Opportunity:
    """Open a deal for a customer; its stage comes from the pipeline process once it runs."""
    problems = {}
    if not name.strip():
        problems["name"] = "is required"
    if pipeline not in PIPELINES:
        problems["pipeline"] = f"unknown pipeline '{pipeline}'; use one of {', '.join(PIPELINES)}"
    if currency not in CURRENCIES:
        problems["currency"] = f"unknown currency '{currency}'"
    if problems:
        raise fields_error(**problems)
    value = parse_amount(amount)
    if session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} does not exist")
    opportunity = Opportunity(
        customer_id=customer_id,
        owner_id=owner.id,
        lead_id=lead_id,
        name=name.strip(),
        amount=value,
        currency=currency,
        expected_close=expected_close,
        pipeline=pipeline,
        status="open",
        created_at=now,
    )
    session.add(opportunity)
    session.flush()
    return opportunity


def get_opportunity(session: Session, user: User, opportunity_id: int) -> Opportunity:
    """Return an opportunity the user may see; others' deals look like they do not exist."""
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None or not can_see_owner(session, user, opportunity.owner_id):
        raise NotFound(f"opportunity {opportunity_id} does not exist")
    return opportunity


def enter_stage(
    session: Session,
    opportunity_id: int,
    stage: str,
    win_rate: int,
    *,
    now: datetime,
    by: str | None,
) -> Opportunity | None:
    """Record that a deal entered a stage; its stage win rate follows, an override stays."""
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None:
        return None
    if opportunity.status != "open":
        raise Conflict(f"opportunity {opportunity_id} is already {opportunity.status}")
    if opportunity.stage == stage and opportunity.stage_since is not None:
        return opportunity  # the same stage opened again (e.g. exit criteria were missing)
    session.add(
        StageChange(
            opportunity_id=opportunity.id,
            from_stage=opportunity.stage,
            to_stage=stage,
            win_rate=win_rate,
            changed_at=now,
            changed_by=by,
        )
    )
    opportunity.stage, opportunity.stage_win_rate, opportunity.stage_since = stage, win_rate, now
    refresh_funnel_deal(session, opportunity.id)
    return opportunity


def set_win_rate_override(
    session: Session, user: User, opportunity_id: int, value: int | None
) -> Opportunity:
    """Set (or clear, with None) the rep's own win rate; later stage moves keep it."""
    opportunity = get_opportunity(session, user, opportunity_id)
    if opportunity.owner_id != user.id and not user.roles & {"manager", "supervisor", "director"}:
        raise fields_error(win_rate="only the owner or their manager may change it")
    if value is not None and not (isinstance(value, int) and 0 <= value <= 100):
        raise fields_error(win_rate="must be a whole number from 0 to 100")
    opportunity.win_rate_override = value
    return opportunity


def check_stage_exit(
    session: Session, opportunity_id: int, stage: str, criteria: list[str] | None = None
) -> dict[str, Any]:
    """Tell whether a deal may leave `stage`, listing what is missing if not.

    :param criteria: the checks to make (codes of EXIT_CHECK_TEXT); None means the shipped
        criteria of that stage key.
    """
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise NotFound(f"opportunity {opportunity_id} does not exist")
    checks = EXIT_CRITERIA.get(stage, []) if criteria is None else criteria
    unknown = [check for check in checks if check not in EXIT_CHECK_TEXT]
    if unknown:
        raise fields_error(criteria=f"unknown exit criteria: {', '.join(map(str, unknown))}")
    missing = [
        EXIT_CHECK_TEXT[check]
        for check in checks
        if not _criterion_met(session, opportunity, check)
    ]
    return {"ok": not missing, "missing": missing}


def _criterion_met(session: Session, opportunity: Opportunity, check: str) -> bool:
    if check == "decision_maker":
        return (
            session.scalar(
                select(Contact.id)
                .where(
                    Contact.customer_id == opportunity.customer_id,
                    Contact.buying_role == "decision_maker",
                )
                .limit(1)
            )
            is not None
        )
    statuses = ("approved", "accepted") if check == "approved_quote" else ("accepted",)
    return (
        session.scalar(
            select(Quote.id)
            .where(Quote.opportunity_id == opportunity.id, Quote.status.in_(statuses))
            .limit(1)
        )
        is not None
    )


def close_opportunity(
    session: Session,
    opportunity_id: int,
    outcome: str,
    reason: str,
    *,
    now: datetime,
    by: str | None,
) -> Opportunity:
    """Mark a deal won or lost (lost needs a reason)."""
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise NotFound(f"opportunity {opportunity_id} does not exist")
    if outcome not in ("won", "lost"):
        raise fields_error(outcome="must be 'won' or 'lost'")
    if outcome == "lost" and not (reason or "").strip():
        raise fields_error(reason="a lost deal needs a reason")
    if opportunity.status != "open":
        raise Conflict(f"opportunity {opportunity_id} is already {opportunity.status}")
    opportunity.status, opportunity.close_reason, opportunity.closed_at = outcome, reason, now
    final_rate = 100 if outcome == "won" else 0
    session.add(
        StageChange(
            opportunity_id=opportunity.id,
            from_stage=opportunity.stage,
            to_stage=outcome,
            win_rate=final_rate,
            changed_at=now,
            changed_by=by,
        )
    )
    opportunity.stage, opportunity.stage_win_rate, opportunity.stage_since = (
        outcome,
        final_rate,
        now,
    )
    opportunity.win_rate_override = None
    refresh_funnel_deal(session, opportunity.id)
    return opportunity


def notify_stale_deal(
    session: Session, opportunity_id: int, stage: str, *, now: datetime
) -> list[str]:
    """Warn the owner and their manager that a deal has sat in a stage too long."""
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise NotFound(f"opportunity {opportunity_id} does not exist")
    owner = session.get(User, opportunity.owner_id)
    told = [u for u in (owner, manager_of(session, owner) if owner else None) if u is not None]
    for user in told:
        notify(
            session,
            user.id,
            "stale_deal",
            f"'{opportunity.name}' has been in stage {stage} longer than planned",
            now=now,
            link=f"/opportunities/{opportunity.id}",
        )
    return [u.username for u in told]
