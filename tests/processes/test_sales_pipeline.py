"""processes/sales_pipeline_*.bpmn: each stage's advance, back, lost, exit check, stale timer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import InvalidInput
from engine.instances import fire_instance_timers, start_instance
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.processes.conftest import REP

# The stage tables of docs/processes.md: (key, title, win rate %, max days).
PIPELINES = {
    "sales_pipeline_new_business": (
        "new_business",
        [
            ("qualification", "Qualification", 10, 14),
            ("needs_analysis", "Needs analysis", 20, 21),
            ("proposal", "Proposal", 50, 21),
            ("negotiation", "Negotiation", 75, 14),
            ("closing", "Closing", 90, 7),
        ],
    ),
    "sales_pipeline_renewal": (
        "renewal",
        [
            ("renewal_review", "Renewal review", 60, 30),
            ("renewal_quote", "Renewal quote", 80, 14),
            ("renewal_signed", "Renewal signed", 95, 7),
        ],
    ),
}
EVERY_STAGE = [(pid, i) for pid, (_, stages) in PIPELINES.items() for i in range(len(stages))]
LATER_STAGES = [(pid, i) for pid, i in EVERY_STAGE if i > 0]


def _key(pid, index):
    return PIPELINES[pid][1][index][0]


@pytest.fixture
def pipeline(session, deployed, round_trip, finish):
    """Start a pipeline and advance it to the stage at `index`."""

    def run(pid, index=0):
        outcome = start_instance(
            session,
            REP,
            pid,
            now=NOW,
            data={"opportunity_id": 8, "customer_id": 3},
            business_key="opportunity:8",
        )
        instance = outcome.instance
        round_trip(instance)
        for key, *_ in PIPELINES[pid][1][:index]:
            finish(instance, key, REP, {"stage_decision": "advance"})
        return instance

    return run


@pytest.mark.parametrize("pid", sorted(PIPELINES))
def test_sales_pipeline_advancing_every_stage_wins(pipeline, open_task, finish, crm, data, pid):
    pipeline_key, stages = PIPELINES[pid]
    instance = pipeline(pid)
    for index, (key, title, win_rate, max_days) in enumerate(stages):
        task = open_task(instance, key)
        assert (task.title, task.lane, task.candidate_role) == (title, "Rep", "rep")
        props = task.properties
        assert (props["stage"], props["win_rate"], props["max_days"], props["pipeline"]) == (
            key,
            str(win_rate),
            str(max_days),
            pipeline_key,
        )
        form = (
            "first_stage" if index == 0 else "last_stage" if index == len(stages) - 1 else "stage"
        )
        assert task.form == f"sales_pipeline/{form}.schema.json"
        assert task.ui_form == f"sales_pipeline/{form}.uischema.json"
        assert task.due_at.replace(tzinfo=None) == (NOW + timedelta(days=max_days)).replace(
            tzinfo=None
        )
        assert f"**{win_rate} %**" in task.instructions
        assert "opportunity 8" in task.instructions
        assert "cannot leave the stage" not in task.instructions
        finish(instance, key, REP, {"stage_decision": "advance", "stage_notes": f"{key} done"})
    assert crm.of("crm.check_stage_exit") == [{"opportunity_id": 8, "stage": k} for k, *_ in stages]
    assert crm.of("crm.close_opportunity") == [
        {"opportunity_id": 8, "outcome": "won", "reason": ""}
    ]
    assert instance.status == "completed"
    assert data(instance)["outcome"] == "won"


@pytest.mark.parametrize(("pid", "index"), LATER_STAGES)
def test_sales_pipeline_back_returns_to_the_previous_stage(
    pipeline, open_ids, finish, crm, pid, index
):
    instance = pipeline(pid, index)
    finish(instance, _key(pid, index), REP, {"stage_decision": "back"})
    assert open_ids(instance) == [_key(pid, index - 1)]
    assert len(crm.of("crm.check_stage_exit")) == index  # going back checks nothing
    finish(instance, _key(pid, index - 1), REP, {"stage_decision": "advance"})
    assert open_ids(instance) == [_key(pid, index)]


@pytest.mark.parametrize(("pid", "index"), EVERY_STAGE)
def test_sales_pipeline_lost_closes_the_opportunity(
    pipeline, finish, crm, data, open_ids, reached, pid, index
):
    instance = pipeline(pid, index)
    finish(
        instance, _key(pid, index), REP, {"stage_decision": "lost", "lost_reason": "went with Acme"}
    )
    assert crm.of("crm.close_opportunity") == [
        {"opportunity_id": 8, "outcome": "lost", "reason": "went with Acme"}
    ]
    assert instance.status == "completed"
    assert open_ids(instance) == []
    assert data(instance)["outcome"] == "lost"
    assert "end_lost" in reached(instance)
    assert "end_won" not in reached(instance)


@pytest.mark.parametrize(("pid", "index"), EVERY_STAGE)
def test_sales_pipeline_missing_exit_criteria_keep_the_stage(
    pipeline, open_task, open_ids, finish, crm, pid, index
):
    stages = PIPELINES[pid][1]
    key = _key(pid, index)
    instance = pipeline(pid, index)
    crm.missing_once[key] = ["No decision maker among the contacts", "No approved quote"]
    first = finish(instance, key, REP, {"stage_decision": "advance"})
    again = open_task(instance, key)
    assert again.id != first.id
    assert "cannot leave the stage yet" in again.instructions
    assert "* No decision maker among the contacts" in again.instructions
    assert "* No approved quote" in again.instructions
    assert crm.of("crm.close_opportunity") == []

    finish(instance, key, REP, {"stage_decision": "advance"})
    if index + 1 < len(stages):
        following = open_task(instance, stages[index + 1][0])
        assert "cannot leave the stage" not in following.instructions
    else:
        assert instance.status == "completed"
        assert [c["outcome"] for c in crm.of("crm.close_opportunity")] == ["won"]
    assert [c["stage"] for c in crm.of("crm.check_stage_exit")][-2:] == [key, key]
    assert open_ids(instance) == ([] if index + 1 == len(stages) else [stages[index + 1][0]])


@pytest.mark.parametrize(("pid", "index"), EVERY_STAGE)
def test_sales_pipeline_stale_deal_timer_fires_after_max_days(
    session, pipeline, open_task, round_trip, crm, pid, index
):
    key, _, _, max_days = PIPELINES[pid][1][index]
    instance = pipeline(pid, index)
    task = open_task(instance, key)
    due = NOW + timedelta(days=max_days)

    fire_instance_timers(session, instance.id, now=due - timedelta(minutes=1))
    round_trip(instance)
    assert crm.of("crm.notify_stale_deal") == []
    fire_instance_timers(session, instance.id, now=due)
    round_trip(instance)
    assert crm.of("crm.notify_stale_deal") == [{"opportunity_id": 8, "stage": key}]
    # The warning does not move the deal: the same stage task is still open.
    assert open_task(instance, key).id == task.id
    assert instance.status == "running"
    fire_instance_timers(session, instance.id, now=due + timedelta(days=30))
    round_trip(instance)
    assert len(crm.of("crm.notify_stale_deal")) == 1


def test_sales_pipeline_first_stage_cannot_go_back(session, pipeline, open_task):
    instance = pipeline("sales_pipeline_new_business")
    task = open_task(instance, "qualification")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, REP, task.id, {"stage_decision": "back"}, now=NOW)
    assert "stage_decision" in error.value.fields


def test_sales_pipeline_lost_needs_a_reason(session, pipeline, open_task):
    instance = pipeline("sales_pipeline_renewal", 1)
    task = open_task(instance, "renewal_quote")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, REP, task.id, {"stage_decision": "lost"}, now=NOW)
    assert "lost_reason" in error.value.fields
