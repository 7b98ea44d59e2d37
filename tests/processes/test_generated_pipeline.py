"""Pipelines made by the stage editor run like the shipped ones, with the real engine and CRM.

Each scenario runs once on the shipped BPMN and once on the BPMN generated from the stage list
read out of it; what a user sees (open tasks, their titles, forms, due dates, instructions, the
opportunity's stage and status, notifications) must be the same.
"""

from __future__ import annotations

import shutil
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from crm.customers.models import Contact
from crm.designer.workspace import Workspace
from crm.directory.models import Notification
from crm.directory.services import actor_for
from crm.quotes.models import Quote
from crm.sales.board import build_board, move_deal
from crm.sales.models import Opportunity, StageChange
from crm.stage_design.pipeline_bpmn import build_pipeline_bpmn
from crm.stage_design.pipeline_read import read_pipeline_bpmn
from crm.stage_design.pipelines import load_pipeline, pipeline_stages, save_pipeline
from crm.stage_design.stages import StageSpec
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.instances import fire_instance_timers, start_instance
from engine.models import HumanTask, ProcessInstance
from engine.tasks import complete_task
from tests.conftest import FORMS, NOW, PROCESSES
from tests.crm.conftest import make_customer, make_team, make_user  # noqa: F401

PIPELINES = ("new_business", "renewal")
# The deploy set of these tests: the shipped files (other work in processes/ stays out of it).
SHIPPED = (
    "invoice_request.bpmn",
    "lead_followup.bpmn",
    "lead_to_cash.bpmn",
    "payment_collection.bpmn",
    "quote_approval.bpmn",
    "quote_approval_chain.dmn",
    "quote_check.dmn",
    "quote_notify.bpmn",
    "quote_review.bpmn",
    "rep_handover.bpmn",
    "sales_pipeline_new_business.bpmn",
    "sales_pipeline_renewal.bpmn",
)


@pytest.fixture
def shipped_dir(tmp_path) -> Path:
    """A processes folder holding the shipped files."""
    folder = tmp_path / "processes"
    folder.mkdir()
    for name in SHIPPED:
        shutil.copy(PROCESSES / name, folder / name)
    return folder


@pytest.fixture
def org(session, make_team, make_user):  # noqa: F811
    manager = make_user("manager", username="gen_manager")
    team = make_team("Generated", manager=manager)
    manager.team_id = team.id
    rep = make_user("rep", team=team, username="gen_rep")
    admin = make_user("admin", username="gen_admin")
    session.flush()
    return {"manager": manager, "rep": rep, "admin": admin, "team": team}


@pytest.fixture
def deploy_dir(session, org):
    """Deploy a folder of processes as the admin; returns the deploy result."""

    def run(folder: Path, files: dict[str, bytes] | None = None):
        bundle = collect_files([folder])
        bundle.update(files or {})
        return deploy_files(
            session, "gen_admin", bundle, load_form=folder_form_loader(FORMS), now=NOW
        )

    return run


class Deal:
    """One opportunity driven through its pipeline instance by its rep."""

    def __init__(self, session, org, make_customer, pipeline: str, *, ready: bool) -> None:  # noqa: F811
        self.session, self.rep = session, org["rep"]
        customer = make_customer(self.rep)
        self.opportunity = Opportunity(
            customer_id=customer.id,
            owner_id=self.rep.id,
            name=f"Deal {customer.id}",
            amount=Decimal("1000"),
            currency="CNY",
            pipeline=pipeline,
            status="open",
            created_at=NOW,
        )
        session.add(self.opportunity)
        session.flush()
        if ready:  # every exit criterion holds
            self.add_decision_maker()
            session.add(
                Quote(
                    number=f"Q-{self.opportunity.id}",
                    opportunity_id=self.opportunity.id,
                    customer_id=customer.id,
                    owner_id=self.rep.id,
                    status="accepted",
                    created_at=NOW,
                )
            )
            session.flush()
        self.instance = start_instance(
            session,
            actor_for(self.rep),
            f"sales_pipeline_{pipeline}",
            now=NOW,
            data={"opportunity_id": self.opportunity.id, "customer_id": customer.id},
            business_key=f"opportunity:{self.opportunity.id}",
            subject=("opportunity", self.opportunity.id),
        ).instance

    def add_decision_maker(self) -> None:
        self.session.add(
            Contact(
                customer_id=self.opportunity.customer_id,
                name="Dee Maker",
                buying_role="decision_maker",
            )
        )
        self.session.flush()

    def open_tasks(self) -> list[HumanTask]:
        return list(
            self.session.scalars(
                select(HumanTask)
                .where(HumanTask.instance_id == self.instance.id, HumanTask.status == "open")
                .order_by(HumanTask.id)
            )
        )

    def do(self, decision: str, **extra: str) -> None:
        (task,) = self.open_tasks()
        complete_task(
            self.session,
            actor_for(self.rep),
            task.id,
            {"stage_decision": decision, **extra},
            now=NOW,
        )

    def seen(self) -> tuple:
        """What the rep and the pipeline board see now."""
        self.session.refresh(self.opportunity)
        tasks = [
            (
                t.bpmn_id,
                t.title,
                t.lane,
                t.assignee,
                t.form,
                t.ui_form,
                {k: t.properties.get(k) for k in ("stage", "win_rate", "max_days", "pipeline")},
                t.due_at.replace(tzinfo=UTC) if t.due_at.tzinfo is None else t.due_at,
                "cannot leave the stage yet" in (t.instructions or ""),
                "* a decision maker among the customer's contacts" in (t.instructions or ""),
            )
            for t in self.open_tasks()
        ]
        o = self.opportunity
        return (tasks, o.stage, o.stage_win_rate, o.status, o.close_reason, self.instance.status)


def _scenarios(deal_for):
    """Run every scenario; return what was seen after each step."""
    seen: dict[str, list] = {}

    walk = deal_for(ready=True)
    steps = [walk.seen()]
    while walk.instance.status != "completed":
        walk.do("advance")
        steps.append(walk.seen())
    seen["advance to won"] = steps

    back = deal_for(ready=True)
    back.do("advance")
    steps = [back.seen()]
    back.do("back")
    steps.append(back.seen())
    seen["back"] = steps

    lost = deal_for(ready=True)
    lost.do("advance")
    lost.do("lost", lost_reason="went with Acme")
    seen["lost"] = [lost.seen()]

    blocked = deal_for(ready=False)
    steps = []
    for _ in range(3):  # reach the first stage that has criteria, and try to leave it
        blocked.do("advance")
        steps.append(blocked.seen())
    seen["exit check fails"] = steps

    stale = deal_for(ready=True)
    (task,) = stale.open_tasks()
    days = int(task.properties["max_days"])
    fire_instance_timers(
        stale.session, stale.instance.id, now=NOW + timedelta(days=days) - timedelta(minutes=1)
    )
    before = _stale_notices(stale)
    fire_instance_timers(stale.session, stale.instance.id, now=NOW + timedelta(days=days))
    seen["stale"] = [before, _stale_notices(stale), stale.seen()]
    return seen


def _stale_notices(deal: Deal) -> list[tuple[int, str]]:
    rows = deal.session.execute(
        select(Notification.user_id, Notification.message)
        .where(Notification.kind == "stale_deal")
        .where(Notification.link == f"/opportunities/{deal.opportunity.id}")
        .order_by(Notification.user_id)
    )
    return [(user_id, text.replace(deal.opportunity.name, "<deal>")) for user_id, text in rows]


def _normalise(seen: dict[str, list]) -> dict[str, list]:
    """Drop what differs between two otherwise identical runs (task ids, deal names)."""
    return {
        k: [repr(step).replace("Deal ", "Deal#") for step in steps] for k, steps in seen.items()
    }


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_generated_pipeline_behaves_like_the_shipped_one(
    session,
    org,
    make_customer,  # noqa: F811
    deploy_dir,
    shipped_dir,
    pipeline,  # noqa: F811
):
    deploy_dir(shipped_dir)
    shipped = _scenarios(lambda ready: Deal(session, org, make_customer, pipeline, ready=ready))

    name = f"sales_pipeline_{pipeline}.bpmn"
    spec = read_pipeline_bpmn((PROCESSES / name).read_bytes(), pipeline)
    result = deploy_dir(shipped_dir, {name: build_pipeline_bpmn(spec)})
    versions = {p.process_id: (p.version, p.new) for p in result.processes}
    assert versions[f"sales_pipeline_{pipeline}"] == (2, True)
    generated = _scenarios(lambda ready: Deal(session, org, make_customer, pipeline, ready=ready))

    assert _normalise(generated) == _normalise(shipped)
    # And the behaviour itself, as docs/processes.md describes it:
    won = generated["advance to won"]
    assert [step[1] for step in won[:-1]] == [s.key for s in spec.stages]
    assert won[-1][1:4] == ("won", 100, "won")
    assert generated["back"][1][1] == spec.stages[0].key
    assert generated["lost"][0][1:5] == ("lost", 0, "lost", "went with Acme")
    stale_before, stale_after, _ = generated["stale"]
    assert stale_before == []
    assert [user for user, _ in stale_after] == sorted([org["rep"].id, org["manager"].id])


def test_generated_pipeline_exit_check_failure_lists_what_is_missing(
    session,
    org,
    make_customer,  # noqa: F811
    deploy_dir,
    shipped_dir,  # noqa: F811
):
    name = "sales_pipeline_new_business.bpmn"
    spec = read_pipeline_bpmn((PROCESSES / name).read_bytes(), "new_business")
    deploy_dir(shipped_dir, {name: build_pipeline_bpmn(spec)})
    deal = Deal(session, org, make_customer, "new_business", ready=False)
    deal.do("advance")  # qualification has no criteria
    first = deal.open_tasks()[0]
    assert first.bpmn_id == "needs_analysis"
    deal.do("advance")
    (again,) = deal.open_tasks()
    assert again.bpmn_id == "needs_analysis"
    assert again.id != first.id
    assert "* a decision maker among the customer's contacts" in again.instructions
    deal.add_decision_maker()
    deal.do("advance")
    assert [t.bpmn_id for t in deal.open_tasks()] == ["proposal"]
    assert "cannot leave the stage" not in deal.open_tasks()[0].instructions


def test_stage_added_by_editor_reaches_new_deals_while_old_ones_finish_on_their_version(
    session,
    org,
    make_customer,  # noqa: F811
    deploy_dir,
    shipped_dir,  # noqa: F811
):
    folder = shipped_dir
    deploy_dir(folder)
    files = Workspace(folder, FORMS)
    old = Deal(session, org, make_customer, "new_business", ready=True)
    old.do("advance")
    old.do("advance")
    assert old.seen()[1] == "proposal"

    current, version = load_pipeline(session, org["admin"], "new_business", files=files)
    stages = list(current.stages)
    review = StageSpec("technical_review", "Technical review", 35, 10, ("decision_maker",))
    stages.insert(2, review)
    saved = save_pipeline(
        session,
        org["admin"],
        "new_business",
        stages,
        "Add a technical review",
        files=files,
        now=NOW,
    )
    assert saved.version == version + 1
    new_versions = {p.process_id for p in saved.result.processes if p.new}
    assert new_versions == {"sales_pipeline_new_business", "lead_to_cash"}  # the caller follows
    assert b'id="technical_review"' in (folder / "sales_pipeline_new_business.bpmn").read_bytes()

    new = Deal(session, org, make_customer, "new_business", ready=True)
    new.do("advance")
    new.do("advance")
    (task,) = new.open_tasks()
    assert (task.bpmn_id, task.title, task.properties["win_rate"]) == (
        "technical_review",
        "Technical review",
        "35",
    )
    assert task.properties["exit_criteria"] == "decision_maker"
    assert new.seen()[1:3] == ("technical_review", 35)
    board = [s.key for s in pipeline_stages(session, "new_business")]
    assert board[:4] == ["qualification", "needs_analysis", "technical_review", "proposal"]
    # The rep's board shows the new column, and the card moves on from it to proposal.
    columns = [c.stage for c in build_board(session, org["rep"], "new_business").columns]
    assert columns[:4] == ["qualification", "needs_analysis", "technical_review", "proposal"]
    moved = move_deal(session, org["rep"], new.opportunity.id, "proposal", now=NOW)
    assert (moved.from_stage, moved.to_stage, moved.missing) == ("technical_review", "proposal", [])
    moved = move_deal(session, org["rep"], new.opportunity.id, "technical_review", now=NOW)
    assert moved.to_stage == "technical_review"

    # The old deal goes back and forth on its own version: no technical review for it.
    old.do("back")
    old.do("advance")
    assert [t.bpmn_id for t in old.open_tasks()] == ["proposal"]
    definitions = {
        deal: session.get(ProcessInstance, deal.instance.id).definition.version
        for deal in (old, new)
    }
    assert definitions == {old: version, new: version + 1}
    history = session.scalars(
        select(StageChange.to_stage)
        .where(StageChange.opportunity_id == new.opportunity.id)
        .order_by(StageChange.id)
    ).all()
    assert history == [
        "qualification",
        "needs_analysis",
        "technical_review",
        "proposal",
        "technical_review",
    ]
