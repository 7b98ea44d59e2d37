"""The ops console's instance filters, counts per status, element states and heatmap figures."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

import crm.ops_lookup  # noqa: F401  (installs the customer and owner lookup)
from crm.customers.models import Customer
from crm.directory.models import User
from crm.leads.models import Lead
from crm.orders.models import Installment, SalesOrder
from crm.sales.models import Opportunity
from engine.actor import Actor
from engine.deploy import deploy_files, folder_form_loader
from engine.errors import Forbidden
from engine.instance_elements import element_states, element_statistics
from engine.instance_queries import (
    InstanceFilter,
    list_instances,
    matching_ids,
    status_counts,
)
from engine.instances import start_instance, terminate_instance
from engine.models import (
    HumanTask,
    Incident,
    InstanceTimer,
    MessageSubscription,
    ProcessInstance,
)
from tests.conftest import FIXTURES, NOW

OPS = Actor("olga", frozenset({"ops"}))
REP = Actor("rita", frozenset({"rep"}))
DAY = timedelta(days=1)

# start -> prepare (script) -> work (divides by `divisor`) -> check (user task)
# -> pause (one-hour timer) -> end, with a diagram for the viewer.
OPS_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  id="ops_defs" targetNamespace="http://stagecraft.test/ops">
  <bpmn:process id="ops_demo" name="NAME" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="prepare" name="Prepare">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>total = 10</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="work" name="Divide">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>ratio = total / divisor</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="check" name="Check">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:intermediateCatchEvent id="pause" name="One hour">
      <bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
      <bpmn:timerEventDefinition>
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT1H"</bpmn:timeDuration>
      </bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare"/>
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="work"/>
    <bpmn:sequenceFlow id="f3" sourceRef="work" targetRef="check"/>
    <bpmn:sequenceFlow id="f4" sourceRef="check" targetRef="pause"/>
    <bpmn:sequenceFlow id="f5" sourceRef="pause" targetRef="end"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="ops_diagram">
    <bpmndi:BPMNPlane id="ops_plane" bpmnElement="ops_demo">
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="100" y="100" width="36" height="36"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="prepare_di" bpmnElement="prepare">
        <dc:Bounds x="180" y="78" width="100" height="80"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="work_di" bpmnElement="work">
        <dc:Bounds x="330" y="78" width="100" height="80"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="check_di" bpmnElement="check">
        <dc:Bounds x="480" y="78" width="100" height="80"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="pause_di" bpmnElement="pause">
        <dc:Bounds x="630" y="100" width="36" height="36"/></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="end_di" bpmnElement="end">
        <dc:Bounds x="720" y="100" width="36" height="36"/></bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1">
        <di:waypoint x="136" y="118"/><di:waypoint x="180" y="118"/></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f2_di" bpmnElement="f2">
        <di:waypoint x="280" y="118"/><di:waypoint x="330" y="118"/></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f3_di" bpmnElement="f3">
        <di:waypoint x="430" y="118"/><di:waypoint x="480" y="118"/></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f4_di" bpmnElement="f4">
        <di:waypoint x="580" y="118"/><di:waypoint x="630" y="118"/></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="f5_di" bpmnElement="f5">
        <di:waypoint x="666" y="118"/><di:waypoint x="720" y="118"/></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def deploy_ops_process(session, *, name: str = "Ops demo", process_id: str = "ops_demo") -> int:
    """Deploy the ops demo process (a new version when `name` changes); return its definition id."""
    xml = OPS_PROCESS.replace("NAME", name).replace('"ops_demo"', f'"{process_id}"')
    result = deploy_files(
        session,
        "admin",
        {f"{process_id}.bpmn": xml.encode()},
        load_form=folder_form_loader(FIXTURES / "forms"),
        now=NOW,
    )
    return result.processes[0].definition_id


@pytest.fixture
def world(session):
    """Seven instances over three versions, with CRM records, live rows and incidents.

    a  ops_demo v1 running    Q-100  lead of Acme (rita)      task at check since 1 day
    b  ops_demo v1 waiting    Q-101  deal of Acme (rita)      timer at pause since 8 days
    c  ops_demo v2 error      Q-200  installment of Acme      open incident at work (5 days)
    d  ops_demo v2 completed  X-1    deal of Beta (sam)       finished 20 days ago
    e  ops_other   waiting    Q-1%   customer Beta (sam)      message at pause (3 days)
    f  ops_demo v1 suspended  -      -                        task at check since 3 days
    g  ops_demo v1 running    -      -                        only a resolved incident
    """
    d1 = deploy_ops_process(session)
    d2 = deploy_ops_process(session, name="Ops demo, second version")
    d3 = deploy_ops_process(session, name="Other", process_id="ops_other")
    rita = User(username="rita", display_name="Rita", created_at=NOW)
    sam = User(username="sam", display_name="Sam", created_at=NOW)
    session.add_all([rita, sam])
    session.flush()
    acme = Customer(name="Acme", name_key="acme", owner_id=rita.id, created_at=NOW)
    beta = Customer(name="Beta", name_key="beta", owner_id=sam.id, created_at=NOW)
    session.add_all([acme, beta])
    session.flush()
    lead = Lead(name="Acme lead", owner_id=rita.id, customer_id=acme.id, created_at=NOW)
    deal_acme = Opportunity(
        customer_id=acme.id,
        owner_id=rita.id,
        name="Acme deal",
        amount=Decimal(1),
        pipeline="new_business",
        created_at=NOW,
    )
    deal_beta = Opportunity(
        customer_id=beta.id,
        owner_id=sam.id,
        name="Beta deal",
        amount=Decimal(1),
        pipeline="new_business",
        created_at=NOW,
    )
    session.add_all([lead, deal_acme, deal_beta])
    session.flush()
    order = SalesOrder(
        number="SO-1",
        opportunity_id=deal_acme.id,
        customer_id=acme.id,
        owner_id=rita.id,
        amount=Decimal(1),
        signed_on=NOW.date(),
        created_at=NOW,
    )
    session.add(order)
    session.flush()
    installment = Installment(order_id=order.id, seq=1, due_date=NOW.date(), amount=Decimal(1))
    session.add(installment)
    session.flush()

    def instance(definition, process, status, key, subject, started_days, updated_days):
        row = ProcessInstance(
            definition_id=definition,
            process_id=process,
            business_key=key,
            subject_type=subject[0] if subject else None,
            subject_id=subject[1] if subject else None,
            status=status,
            state="{}",
            serializer_version="1",
            state_token=uuid.uuid4().hex,
            started_at=NOW - started_days * DAY,
            updated_at=NOW - updated_days * DAY,
        )
        session.add(row)
        session.flush()
        return row

    ids = {}
    ids["a"] = instance(d1, "ops_demo", "running", "Q-100", ("lead", lead.id), 10, 1).id
    ids["b"] = instance(d1, "ops_demo", "waiting", "Q-101", ("opportunity", deal_acme.id), 9, 8).id
    ids["c"] = instance(d2, "ops_demo", "error", "Q-200", ("installment", installment.id), 5, 5).id
    ids["d"] = instance(
        d2, "ops_demo", "completed", "X-1", ("opportunity", deal_beta.id), 30, 20
    ).id
    ids["e"] = instance(d3, "ops_other", "waiting", "Q-1%", ("customer", beta.id), 3, 3).id
    ids["f"] = instance(d1, "ops_demo", "suspended", None, None, 15, 12).id
    ids["g"] = instance(d1, "ops_demo", "running", None, None, 7, 6).id

    def task(name, bpmn_id, status, since_days):
        session.add(
            HumanTask(
                instance_id=ids[name],
                task_id=uuid.uuid4().hex[:36],
                process_id="ops_demo",
                bpmn_id=bpmn_id,
                title=bpmn_id,
                status=status,
                properties={},
                created_at=NOW - since_days * DAY,
            )
        )

    task("a", "check", "open", 1)
    task("f", "check", "open", 3)
    task("d", "check", "completed", 25)  # finished work is not waiting
    session.add(
        InstanceTimer(
            instance_id=ids["b"],
            task_id="t-b",
            bpmn_id="pause",
            fire_at=NOW + DAY,
            status="waiting",
            attempts=0,
            created_at=NOW - 8 * DAY,
        )
    )
    session.add(
        InstanceTimer(
            instance_id=ids["d"],
            task_id="t-d",
            bpmn_id="pause",
            fire_at=NOW - 21 * DAY,
            status="done",
            attempts=0,
        )
    )
    # Written before subscriptions recorded their start: waits since the instance's last change.
    session.add(
        MessageSubscription(
            instance_id=ids["e"],
            task_id="m-e",
            bpmn_id="pause",
            message_name="paid",
            correlation_key="Q-1%",
        )
    )
    for name, status in (("c", "open"), ("g", "resolved")):
        session.add(
            Incident(
                instance_id=ids[name],
                task_id=f"x-{name}",
                bpmn_id="work",
                element_name="Divide",
                line=1,
                error_type="ZeroDivisionError",
                message="division by zero",
                status=status,
                created_at=NOW - 5 * DAY,
            )
        )
    session.flush()
    ids.update(d1=d1, d2=d2, d3=d3, customer_acme=acme.id, customer_beta=beta.id)
    return ids


def names(world, found):
    by_id = {v: k for k, v in world.items() if len(k) == 1}
    return sorted(by_id[i] for i in found)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (InstanceFilter(), "abcdefg"),
        (InstanceFilter(process_id="ops_demo"), "abcdfg"),
        (InstanceFilter(process_id="ops_other"), "e"),
        (InstanceFilter(status="waiting"), "be"),
        (InstanceFilter(status="error"), "c"),
        (InstanceFilter(business_key="Q-100"), "a"),
        (InstanceFilter(business_key="Q-1*"), "abe"),
        (InstanceFilter(business_key="Q-1%*"), "e"),  # % is a character, not a wildcard
        (InstanceFilter(business_key="Q-1"), ""),
        (InstanceFilter(owner="rita"), "abc"),
        (InstanceFilter(owner="sam"), "de"),
        (InstanceFilter(owner="nobody"), ""),
        (InstanceFilter(started_from=NOW - 10 * DAY, started_to=NOW - 5 * DAY), "abg"),
        (InstanceFilter(updated_from=NOW - 6 * DAY), "aceg"),
        (InstanceFilter(updated_to=NOW - 12 * DAY), "d"),  # the upper bound is exclusive
        (InstanceFilter(updated_to=NOW - 11 * DAY), "df"),
        (InstanceFilter(waiting_at="check"), "af"),
        (InstanceFilter(waiting_at="pause"), "be"),  # a timer, or a message
        (InstanceFilter(in_error=True), "c"),
        (InstanceFilter(idle_days=7), "bf"),  # d is idle longer but finished
        (InstanceFilter(process_id="ops_demo", owner="rita", status="waiting"), "b"),
    ],
)
def test_matching_ids_filter_exactly(session, world, criteria, expected):
    assert names(world, matching_ids(session, criteria, now=NOW)) == list(expected)


def test_matching_ids_by_version_customer_and_selection(session, world):
    by_version = matching_ids(session, InstanceFilter(definition_id=world["d2"]), now=NOW)
    assert names(world, by_version) == ["c", "d"]
    acme = matching_ids(session, InstanceFilter(customer_id=world["customer_acme"]), now=NOW)
    assert names(world, acme) == ["a", "b", "c"]
    beta = matching_ids(session, InstanceFilter(customer_id=world["customer_beta"]), now=NOW)
    assert names(world, beta) == ["d", "e"]
    chosen = InstanceFilter(instance_ids=(world["a"], world["c"]), status="error")
    assert names(world, matching_ids(session, chosen, now=NOW)) == ["c"]


def test_matching_ids_newest_first_up_to_limit(session, world):
    found = matching_ids(session, InstanceFilter(process_id="ops_demo"), now=NOW, limit=3)
    assert found == [world["g"], world["f"], world["d"]]


def test_status_counts_ignore_the_chosen_status(session, world):
    counts = status_counts(session, InstanceFilter(process_id="ops_demo", status="error"), now=NOW)
    assert counts == {
        "running": 2,
        "waiting": 1,
        "suspended": 1,
        "error": 1,
        "completed": 1,
        "terminated": 0,
    }


def test_status_counts_stop_at_the_cap(session, world):
    counts = status_counts(session, InstanceFilter(), now=NOW, cap=1)
    assert counts["running"] == 2  # "more than 1"
    assert counts["error"] == 1


def test_status_counts_of_a_large_selection_are_not_counted_per_status(session, world):
    waiting = InstanceFilter(waiting_at="check")  # two instances wait there
    exact = status_counts(session, waiting, now=NOW, cap=2)
    assert sum(n or 0 for n in exact.values()) == 2
    assert None not in exact.values()
    # More match than the cap: reading every match to split it by status is what the cap
    # avoids, so no status gets a number (the page shows "more than 1" in all).
    assert set(status_counts(session, waiting, now=NOW, cap=1).values()) == {None}


def test_list_instances_pages_newest_first_with_live_elements(session, world):
    first = list_instances(
        session, OPS, InstanceFilter(definition_id=world["d1"]), now=NOW, page_size=3
    )
    assert [r.instance.id for r in first.rows] == [world["g"], world["f"], world["b"]]
    assert first.rows[1].waiting_at == ["check"]
    assert first.rows[2].waiting_at == ["pause"]
    assert first.next_before == world["b"]
    rest = list_instances(
        session,
        OPS,
        InstanceFilter(definition_id=world["d1"]),
        now=NOW,
        before=first.next_before,
        page_size=3,
    )
    assert [r.instance.id for r in rest.rows] == [world["a"]]
    assert rest.next_before is None
    errored = list_instances(session, OPS, InstanceFilter(in_error=True), now=NOW)
    assert errored.rows[0].incident == "division by zero"
    assert errored.counts["error"] == 1
    assert errored.counts["running"] == 0


def test_only_ops_and_admins_may_list_or_count(session, world):
    with pytest.raises(Forbidden):
        list_instances(session, REP, InstanceFilter(), now=NOW)
    with pytest.raises(Forbidden):
        element_statistics(session, REP, world["d1"], now=NOW)
    with pytest.raises(Forbidden):
        element_states(session, REP, world["a"])
    admin = Actor("ada", frozenset({"admin"}))
    assert len(list_instances(session, admin, InstanceFilter(), now=NOW).rows) == 7


def test_element_statistics_count_waits_and_average_their_age(session, world):
    v1 = {s.bpmn_id: s for s in element_statistics(session, OPS, world["d1"], now=NOW)}
    assert set(v1) == {"check", "pause"}  # g's incident is resolved
    assert (v1["check"].waiting, v1["check"].average_wait) == (2, 2 * DAY)  # 1 and 3 days
    assert (v1["pause"].waiting, v1["pause"].average_wait) == (1, 8 * DAY)
    v2 = {s.bpmn_id: s for s in element_statistics(session, OPS, world["d2"], now=NOW)}
    assert (v2["work"].waiting, v2["work"].errors) == (0, 1)
    other = element_statistics(session, OPS, world["d3"], now=NOW)
    assert [(s.bpmn_id, s.waiting, s.average_wait) for s in other] == [("pause", 1, 3 * DAY)]


def test_element_states_follow_the_stored_tasks(session):
    deploy_ops_process(session)
    failed = start_instance(session, OPS, "ops_demo", now=NOW, data={"divisor": 0}).instance
    working = start_instance(session, OPS, "ops_demo", now=NOW, data={"divisor": 2}).instance
    session.flush()
    assert element_states(session, OPS, failed.id) == {
        "Start": "completed",
        "start": "completed",
        "prepare": "completed",
        "work": "error",
    }
    states = element_states(session, OPS, working.id)
    assert (states["work"], states["check"]) == ("completed", "active")
    assert "pause" not in states  # predicted, not reached
    terminate_instance(session, OPS, working.id, now=NOW + DAY)
    session.flush()
    assert element_states(session, OPS, working.id)["check"] == "cancelled"
