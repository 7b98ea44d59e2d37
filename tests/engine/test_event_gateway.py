"""An event-based gateway: whichever of its timer and message comes first decides the path."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from engine.actor import Actor
from engine.deploy import deploy_files, folder_form_loader
from engine.instances import due_timer_instances, fire_instance_timers, send_message, start_instance
from engine.models import MessageSubscription
from engine.state import LIVE_CACHE, load_state
from engine.sync import read_derived_rows
from engine.views import describe_instance
from tests.conftest import FIXTURES, NOW

OPS = Actor("olga", frozenset({"ops"}))
_XML = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="t">
  <bpmn:message id="m1" name="ping"/>
  <bpmn:process id="race" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:eventBasedGateway id="gw">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:eventBasedGateway>
    <bpmn:intermediateCatchEvent id="hour">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:timerEventDefinition>
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT1H"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="pinged">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m1"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:scriptTask id="late"><bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>f6</bpmn:outgoing>
      <bpmn:script>result = "timed out"</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="early"><bpmn:incoming>f5</bpmn:incoming><bpmn:outgoing>f7</bpmn:outgoing>
      <bpmn:script>result = "answered"</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="e1"><bpmn:incoming>f6</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="e2"><bpmn:incoming>f7</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="hour"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="pinged"/>
    <bpmn:sequenceFlow id="f4" sourceRef="hour" targetRef="late"/>
    <bpmn:sequenceFlow id="f5" sourceRef="pinged" targetRef="early"/>
    <bpmn:sequenceFlow id="f6" sourceRef="late" targetRef="e1"/>
    <bpmn:sequenceFlow id="f7" sourceRef="early" targetRef="e2"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _start(session):
    deploy_files(
        session,
        "admin",
        {"race.bpmn": _XML.encode()},
        load_form=folder_form_loader(FIXTURES / "forms"),
        now=NOW,
    )
    return start_instance(session, OPS, "race", now=NOW, business_key="race:1").instance


def test_event_gateway_waits_on_its_timer_and_its_message(session, round_trip):
    instance = _start(session)
    round_trip(instance)
    assert instance.next_timer_at == NOW + timedelta(hours=1)
    names = session.scalars(
        select(MessageSubscription.message_name).where(
            MessageSubscription.instance_id == instance.id
        )
    ).all()
    assert names == ["ping"]


def test_event_gateway_message_first(session, round_trip):
    instance = _start(session)
    send_message(session, OPS, "ping", "race:1", {}, now=NOW + timedelta(minutes=5))
    round_trip(instance)
    assert instance.status == "completed"
    assert describe_instance(session, instance)["data"]["result"] == "answered"
    assert due_timer_instances(session, NOW + timedelta(hours=2)) == []


def test_event_gateway_timer_first(session, round_trip):
    instance = _start(session)
    fire_instance_timers(session, instance.id, now=NOW + timedelta(hours=1))
    round_trip(instance)
    assert instance.status == "completed"
    assert describe_instance(session, instance)["data"]["result"] == "timed out"
    assert (
        session.scalars(
            select(MessageSubscription).where(MessageSubscription.instance_id == instance.id)
        ).all()
        == []
    )


def test_waits_read_back_from_the_database_as_the_change_left_them(session):
    """After a restart the derived rows come from one query; they must match what was written."""
    instance = _start(session)
    session.flush()
    remembered = LIVE_CACHE.take(instance.id, instance.state_token)
    assert remembered is not None
    assert remembered.derived is not None
    read = read_derived_rows(session, instance.id)
    assert read == remembered.derived
    # A change restoring the workflow reads them with the task rows, in the same statement.
    assert load_state(session, instance, with_derived=True).derived == remembered.derived
    assert list(read.timers.values()) == [NOW + timedelta(hours=1)]
    assert [key.split("|")[1] for key in read.subscriptions] == ["ping"]
    assert read.open_tasks == set()
