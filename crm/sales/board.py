"""The opportunity board: open deals by stage with totals, and moves that drive the stage task.

A deal's stage belongs to its running pipeline process (docs/processes.md, "Sales stages"):
moving a card completes the deal's open stage task with the decision "advance" or "back", and
the process decides where the deal goes next (it may refuse while exit criteria are missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.directory.services import visible_owner_ids
from crm.errors import Conflict, fields_error, msg
from crm.lookups import customer_names, user_names
from crm.sales.models import PIPELINES, Opportunity
from crm.sales.services import check_stage_exit, get_opportunity
from crm.work import complete_task_as
from engine.models import HumanTask

# The stages of each pipeline process, in order (docs/processes.md).
PIPELINE_STAGES: dict[str, tuple[str, ...]] = {
    "new_business": ("qualification", "needs_analysis", "proposal", "negotiation", "closing"),
    "renewal": ("renewal_review", "renewal_quote", "renewal_signed"),
}
NOT_STARTED = ""  # the column of deals whose pipeline process has not opened a stage yet
WON = "won"  # advancing from the last stage wins the deal
DECISION_FIELD = "stage_decision"  # the stage forms' field (forms/sales_pipeline/)
_CENT = Decimal("0.01")


def weighted_amount(deal: Opportunity) -> Decimal:
    """Return the deal's amount times its win rate (the rep's override if set)."""
    return (deal.amount * deal.win_rate / Decimal(100)).quantize(_CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class DealCard:
    deal: Opportunity
    customer_name: str
    owner_name: str

    @property
    def weighted(self) -> Decimal:
        return weighted_amount(self.deal)


@dataclass
class ColumnTotal:
    amount: Decimal = Decimal("0")
    weighted: Decimal = Decimal("0")


@dataclass
class BoardColumn:
    stage: str
    cards: list[DealCard] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.cards)

    @property
    def totals(self) -> dict[str, ColumnTotal]:
        """Return the column's amount and weighted amount per currency."""
        totals: dict[str, ColumnTotal] = {}
        for card in self.cards:
            total = totals.setdefault(card.deal.currency, ColumnTotal())
            total.amount += card.deal.amount
            total.weighted += card.weighted
        return dict(sorted(totals.items()))


@dataclass
class Board:
    pipeline: str
    columns: list[BoardColumn]
    stages: tuple[str, ...] = ()

    def neighbours(self, stage: str | None) -> tuple[str | None, str | None]:
        """Return the stages before and after `stage` in this pipeline."""
        return _neighbours(self.stages, stage)

    @property
    def last_stage(self) -> str | None:
        return self.stages[-1] if self.stages else None


def stage_order(session: Session, pipeline: str) -> tuple[str, ...]:
    """Return the stage keys of the newest deployed version of a pipeline, in order.

    Managers change stages in the stage editor; before any pipeline is deployed the shipped
    order stands.
    """
    from crm.stage_design.pipelines import pipeline_stages  # the designer reads this module

    found = tuple(spec.key for spec in pipeline_stages(session, pipeline))
    return found or PIPELINE_STAGES.get(pipeline, ())


def exit_criteria(task: HumanTask) -> list[str] | None:
    """Return the exit criteria a stage task carries (stage-editor processes), else None."""
    listed = (task.properties or {}).get("exit_criteria")
    if listed is None:
        return None
    return [c.strip() for c in str(listed).split(",") if c.strip()]


def neighbour_stages(
    session: Session, pipeline: str, stage: str | None
) -> tuple[str | None, str | None]:
    """Return the stages before and after `stage` in the newest version of the pipeline."""
    return _neighbours(stage_order(session, pipeline), stage)


def _neighbours(stages: tuple[str, ...], stage: str | None) -> tuple[str | None, str | None]:
    if stage not in stages:
        return None, None
    at = stages.index(stage)
    return (
        stages[at - 1] if at > 0 else None,
        stages[at + 1] if at + 1 < len(stages) else None,
    )


def scoped_deals(
    session: Session, user: User, *, pipeline: str | None = None, status: str | None = "open"
) -> list[Opportunity]:
    """Return the deals the user may see, optionally of one pipeline and status."""
    if pipeline is not None and pipeline not in PIPELINES:
        raise fields_error(pipeline=msg("must be one of %(items)s", items=", ".join(PIPELINES)))
    stmt = select(Opportunity).order_by(Opportunity.expected_close, Opportunity.id)
    scope = visible_owner_ids(session, user)
    if scope is not None:
        stmt = stmt.where(Opportunity.owner_id.in_(scope))
    if pipeline is not None:
        stmt = stmt.where(Opportunity.pipeline == pipeline)
    if status is not None:
        stmt = stmt.where(Opportunity.status == status)
    return list(session.scalars(stmt))


def deal_cards(session: Session, deals: list[Opportunity]) -> list[DealCard]:
    customers = customer_names(session, (d.customer_id for d in deals))
    owners = user_names(session, (d.owner_id for d in deals))
    return [
        DealCard(d, customers.get(d.customer_id, ""), owners.get(d.owner_id, "")) for d in deals
    ]


def build_board(session: Session, user: User, pipeline: str) -> Board:
    """Return the user's open deals of a pipeline in stage columns, with per-column totals."""
    cards = deal_cards(session, scoped_deals(session, user, pipeline=pipeline))
    stages = stage_order(session, pipeline)
    columns = {stage: BoardColumn(stage) for stage in stages}
    waiting = BoardColumn(NOT_STARTED)
    for card in cards:
        stage = card.deal.stage
        if not stage:
            waiting.cards.append(card)
        else:
            # A stage the process has but this list lacks (a newer process version) still shows.
            columns.setdefault(stage, BoardColumn(stage)).cards.append(card)
    ordered = ([waiting] if waiting.cards else []) + list(columns.values())
    return Board(pipeline, ordered, stages)


def find_stage_task(session: Session, deal: Opportunity) -> HumanTask | None:
    """Return the deal's open stage task: a task with a `stage` property on the deal's process.

    The pipeline runs either on its own (subject: the opportunity) or called from the lead's
    lead-to-cash process (subject: the lead), so both are looked at.
    """
    subjects = [
        and_(HumanTask.subject_type == "opportunity", HumanTask.subject_id == deal.id),
    ]
    if deal.lead_id is not None:
        subjects.append(
            and_(HumanTask.subject_type == "lead", HumanTask.subject_id == deal.lead_id)
        )
    tasks = session.scalars(
        select(HumanTask)
        .where(HumanTask.status == "open", or_(*subjects))
        .order_by(HumanTask.id.desc())
    )
    staged = [t for t in tasks if (t.properties or {}).get("stage")]
    current = [t for t in staged if t.properties["stage"] == deal.stage]
    found = current or staged
    return found[0] if found else None


@dataclass(frozen=True)
class MoveOutcome:
    deal: Opportunity
    from_stage: str
    to_stage: str | None  # where the deal is now
    missing: list[str]  # exit criteria that kept it where it was

    @property
    def moved(self) -> bool:
        return self.to_stage != self.from_stage


def move_deal(
    session: Session, user: User, opportunity_id: int, to_stage: str, *, now: datetime
) -> MoveOutcome:
    """Move a deal one stage forward or back by completing its open stage task."""
    deal = get_opportunity(session, user, opportunity_id)
    if deal.status != "open":
        raise Conflict(
            msg("opportunity '%(name)s' is %(status)s", name=deal.name, status=deal.status)
        )
    task = find_stage_task(session, deal)
    if task is None:
        raise Conflict(
            msg("opportunity '%(name)s' has no open stage task to move it with", name=deal.name)
        )
    stage = str(task.properties["stage"])
    stages = stage_order(session, deal.pipeline)
    if stage not in stages:
        # A deal still running on an older version of its pipeline moves by that order.
        stages = PIPELINE_STAGES.get(deal.pipeline, ())
    if stage not in stages:
        raise fields_error(
            to_stage=msg(
                "stage '%(stage)s' is not on the %(pipeline)s board",
                stage=stage,
                pipeline=deal.pipeline,
            )
        )
    before, after = _neighbours(stages, stage)
    if to_stage == stage:
        return MoveOutcome(deal, stage, stage, [])
    if to_stage == (after or WON):
        decision = "advance"
    elif before is not None and to_stage == before:
        decision = "back"
    else:
        raise fields_error(
            to_stage=msg(
                "'%(to_stage)s' is not next to '%(stage)s'; move one stage at a time",
                to_stage=to_stage,
                stage=stage,
            )
        )
    complete_task_as(session, user, task.id, {DECISION_FIELD: decision}, now=now)
    session.flush()
    missing: list[str] = []
    if decision == "advance" and deal.stage == stage and deal.status == "open":
        missing = list(check_stage_exit(session, deal.id, stage, exit_criteria(task))["missing"])
    return MoveOutcome(deal, stage, deal.stage, missing)
