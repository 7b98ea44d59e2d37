"""Write a pipeline's BPMN (with its diagram) from its stage list; `pipeline_read` reads it back.

The generated process has the structure of the shipped `processes/sales_pipeline_*.bpmn`: each
stage is a user task in lane Rep (properties stage, win_rate, max_days, pipeline and the stage
form), entered through a merge gateway, with a non-interrupting stale-deal timer of `max_days`
calling `crm.notify_stale_deal`; its decision gateway leads to advance (through
`crm.check_stage_exit`, which now receives the stage's criteria as the `criteria` parameter),
back (to the previous stage) or lost (`crm.close_opportunity`). Leaving the last stage closes the
opportunity as won. Flask-free.
"""

from __future__ import annotations

from lxml import etree

from crm.stage_design.pipeline_diagram import add_diagram
from crm.stage_design.pipeline_read import BPMN, CRITERIA_LEAD, SPIFF, STALE_TEXT
from crm.stage_design.stages import (
    PipelineSpec,
    StageSpec,
    check_stages,
    criteria_choices,
)
from engine.xmlsafe import parse_xml

XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {
    "bpmn": BPMN,
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "xsi": XSI,
    "spiffworkflow": SPIFF,
}
FORMS = ("first_stage", "stage", "last_stage")
_PROBLEMS_BLOCK = """{% if exit_problems %}**This opportunity cannot leave the stage yet:**
{% for problem in exit_problems %}
* {{ problem }}
{% endfor %}
{% endif %}"""


def _b(tag: str) -> str:
    return f"{{{BPMN}}}{tag}"


def _s(tag: str) -> str:
    return f"{{{SPIFF}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        node.text = text
    return node


class _Flows:
    """Collect sequence flows and the incoming/outgoing refs each element needs."""

    def __init__(self) -> None:
        self.flows: list[tuple[str, str, str, str | None, str | None]] = []

    def add(
        self,
        source: str,
        target: str,
        *,
        flow_id: str | None = None,
        name: str | None = None,
        condition: str | None = None,
    ) -> str:
        fid = flow_id or f"flow_{source}_{target}"
        self.flows.append((fid, source, target, name, condition))
        return fid

    def incoming(self, element_id: str) -> list[str]:
        return [f[0] for f in self.flows if f[2] == element_id]

    def outgoing(self, element_id: str) -> list[str]:
        return [f[0] for f in self.flows if f[1] == element_id]


def _plan_flows(stages: tuple[StageSpec, ...]) -> _Flows:
    flows = _Flows()
    keys = [s.key for s in stages]
    flows.add("start", f"enter_{keys[0]}")
    for index, key in enumerate(keys):
        after = f"enter_{keys[index + 1]}" if index + 1 < len(keys) else "close_won"
        flows.add(f"enter_{key}", key)
        flows.add(key, f"decide_{key}")
        flows.add(f"decide_{key}", f"check_exit_{key}", name="advance")
        flows.add(f"check_exit_{key}", f"exit_ok_{key}")
        flows.add(
            f"exit_ok_{key}",
            f"note_problems_{key}",
            name="criteria missing",
            condition='not exit_check["ok"]',
        )
        flows.add(f"note_problems_{key}", f"enter_{key}")
        flows.add(f"stale_{key}", f"notify_stale_{key}")
        flows.add(f"notify_stale_{key}", f"stale_reported_{key}")
        if index > 0:
            flows.add(
                f"decide_{key}",
                f"enter_{keys[index - 1]}",
                name="back",
                condition='stage_decision == "back"',
            )
        flows.add(
            f"decide_{key}",
            "merge_lost",
            flow_id=f"flow_lost_at_{key}",
            name="lost",
            condition='stage_decision == "lost"',
        )
        flows.add(f"exit_ok_{key}", after)
    flows.add("close_won", "mark_won")
    flows.add("mark_won", "end_won")
    flows.add("merge_lost", "close_lost")
    flows.add("close_lost", "mark_lost")
    flows.add("mark_lost", "end_lost")
    return flows


def instructions_of(stage: StageSpec, previous: StageSpec | None, last: bool) -> str:
    """Return the Markdown instructions a stage task shows (a template over the task data)."""
    head = (
        f"## {stage.label}: opportunity {{{{ opportunity_id }}}}"
        "{% if opportunity_name %} ({{ opportunity_name }}){% endif %}"
    )
    rate = (
        f"Win rate at this stage: **{stage.win_rate} %**. A deal that stays here longer than "
        f"**{stage.max_days} days** {STALE_TEXT}"
    )
    parts = [head, rate]
    if stage.guidance.strip():
        parts.append(stage.guidance.strip())
    choices = criteria_choices()
    if stage.criteria:
        listed = "; ".join(choices[c] for c in stage.criteria)
        parts.append(f"{CRITERIA_LEAD} the deal needs: {listed}.")
    back = f" *Back* to return to {previous.label}," if previous is not None else ""
    won = " Advancing from this stage closes the opportunity as won." if last else ""
    closing = (
        f"Choose *Advance* when the work of this stage is done,{back} or *Lost* (with the "
        f"reason) if the customer will not buy.{won}"
    )
    return "\n\n".join(parts) + "\n\n" + _PROBLEMS_BLOCK + "\n" + closing


def _operator(
    parent: etree._Element, operation: str, result: str, params: list[tuple[str, str, str]]
) -> None:
    ext = _sub(parent, _b("extensionElements"))
    op = _sub(ext, _s("serviceTaskOperator"), id=operation, resultVariable=result)
    holder = _sub(op, _s("parameters"))
    for pid, ptype, value in params:
        _sub(holder, _s("parameter"), id=pid, type=ptype, value=value)


def _refs(node: etree._Element, flows: _Flows, element_id: str) -> None:
    for fid in flows.incoming(element_id):
        _sub(node, _b("incoming"), fid)
    for fid in flows.outgoing(element_id):
        _sub(node, _b("outgoing"), fid)


def _stage_elements(
    process: etree._Element, pipeline: PipelineSpec, index: int, flows: _Flows
) -> None:
    stages = pipeline.stages
    stage = stages[index]
    key = stage.key
    last = index == len(stages) - 1
    previous = stages[index - 1] if index > 0 else None
    form = FORMS[0] if index == 0 else FORMS[2] if last else FORMS[1]
    quoted_key = repr(key).replace("'", '"')
    params = [("opportunity_id", "int", "opportunity_id"), ("stage", "str", quoted_key)]

    _refs(_sub(process, _b("exclusiveGateway"), id=f"enter_{key}"), flows, f"enter_{key}")
    task = _sub(process, _b("userTask"), id=key, name=stage.label)
    ext = _sub(task, _b("extensionElements"))
    props = _sub(ext, _s("properties"))
    for name, value in (
        ("stage", key),
        ("win_rate", str(stage.win_rate)),
        ("max_days", str(stage.max_days)),
        ("pipeline", pipeline.key),
        ("exit_criteria", ",".join(stage.criteria)),
        ("formJsonSchemaFilename", f"sales_pipeline/{form}.schema.json"),
        ("formUiSchemaFilename", f"sales_pipeline/{form}.uischema.json"),
    ):
        _sub(props, _s("property"), name=name, value=value)
    _sub(ext, _s("instructionsForEndUser"), instructions_of(stage, previous, last))
    _sub(ext, _s("postScript"), "exit_problems = []")
    _refs(task, flows, key)

    decide = _sub(
        process,
        _b("exclusiveGateway"),
        id=f"decide_{key}",
        name="Decision?",
        default=f"flow_decide_{key}_check_exit_{key}",
    )
    _refs(decide, flows, f"decide_{key}")
    check = _sub(process, _b("serviceTask"), id=f"check_exit_{key}", name="Check the exit criteria")
    criteria = "[" + ", ".join(f'"{c}"' for c in stage.criteria) + "]"
    _operator(
        check, "crm.check_stage_exit", "exit_check", [*params, ("criteria", "list", criteria)]
    )
    _refs(check, flows, f"check_exit_{key}")
    after = flows.outgoing(f"exit_ok_{key}")[-1]
    exit_ok = _sub(
        process,
        _b("exclusiveGateway"),
        id=f"exit_ok_{key}",
        name="Exit criteria met?",
        default=after,
    )
    _refs(exit_ok, flows, f"exit_ok_{key}")
    note = _sub(
        process, _b("scriptTask"), id=f"note_problems_{key}", name="Note the missing criteria"
    )
    _refs(note, flows, f"note_problems_{key}")
    _sub(note, _b("script"), 'exit_problems = exit_check["missing"]')

    timer_name = f"{stage.max_days} days in {stage.label}"
    boundary = _sub(
        process,
        _b("boundaryEvent"),
        id=f"stale_{key}",
        name=timer_name,
        cancelActivity="false",
        attachedToRef=key,
    )
    _refs(boundary, flows, f"stale_{key}")
    definition = _sub(boundary, _b("timerEventDefinition"), id=f"stale_{key}_timer")
    duration = _sub(definition, _b("timeDuration"), f'"P{stage.max_days}D"')
    duration.set(f"{{{XSI}}}type", "bpmn:tFormalExpression")
    notify = _sub(
        process, _b("serviceTask"), id=f"notify_stale_{key}", name="Report the stale deal"
    )
    _operator(notify, "crm.notify_stale_deal", "stale_notice", params)
    _refs(notify, flows, f"notify_stale_{key}")
    reported = _sub(process, _b("endEvent"), id=f"stale_reported_{key}", name="Stale deal reported")
    _refs(reported, flows, f"stale_reported_{key}")


def _ending(process: etree._Element, flows: _Flows, outcome: str, reason: str, label: str) -> None:
    close = _sub(
        process,
        _b("serviceTask"),
        id=f"close_{outcome}",
        name=f"Close the opportunity as {outcome}",
    )
    _operator(
        close,
        "crm.close_opportunity",
        "close_result",
        [
            ("opportunity_id", "int", "opportunity_id"),
            ("outcome", "str", f'"{outcome}"'),
            ("reason", "str", reason),
        ],
    )
    _refs(close, flows, f"close_{outcome}")
    mark = _sub(
        process, _b("scriptTask"), id=f"mark_{outcome}", name=f"Record the outcome: {outcome}"
    )
    _refs(mark, flows, f"mark_{outcome}")
    _sub(mark, _b("script"), f'outcome = "{outcome}"')
    _refs(_sub(process, _b("endEvent"), id=f"end_{outcome}", name=label), flows, f"end_{outcome}")


def element_ids(pipeline: PipelineSpec) -> list[str]:
    """Return the ids of the process's flow nodes, in the order the lane lists them."""
    ids = ["start", "merge_lost"]
    for stage in pipeline.stages:
        k = stage.key
        ids += [
            f"enter_{k}",
            k,
            f"decide_{k}",
            f"check_exit_{k}",
            f"exit_ok_{k}",
            f"note_problems_{k}",
            f"stale_{k}",
            f"notify_stale_{k}",
            f"stale_reported_{k}",
        ]
    return ids + ["close_won", "mark_won", "end_won", "close_lost", "mark_lost", "end_lost"]


def build_pipeline_bpmn(pipeline: PipelineSpec) -> bytes:
    """Return the BPMN XML (with diagram) of a pipeline; the stage list is checked first.

    :raises InvalidInput: naming the stage row and field of every problem.
    """
    check_stages(list(pipeline.stages))
    ids = element_ids(pipeline)
    clash = sorted({i for i in ids if ids.count(i) > 1})
    if clash:
        from crm.errors import fields_error

        raise fields_error(stages=f"stage keys give the same element id twice: {', '.join(clash)}")
    pid = pipeline.process_id
    root = etree.Element(_b("definitions"), nsmap=NSMAP)
    root.set("id", f"Definitions_{pid}")
    root.set("targetNamespace", "http://bpmn.io/schema/bpmn")
    root.set("exporter", "Stagecraft stage editor")
    root.set("exporterVersion", "1")
    collaboration = _sub(root, _b("collaboration"), id=f"Collaboration_{pid}")
    _sub(
        collaboration,
        _b("participant"),
        id=f"Participant_{pid}",
        name=pipeline.name,
        processRef=pid,
    )
    process = _sub(root, _b("process"), id=pid, name=pipeline.name, isExecutable="true")
    _sub(
        process,
        _b("documentation"),
        f"The {pipeline.name}: one user task per stage (lane Rep) carrying the properties stage, "
        "win_rate, max_days and pipeline; made by the stage editor. Started with opportunity_id "
        "and customer_id. Advancing calls crm.check_stage_exit with the stage's criteria; if some "
        "are missing the same stage opens again with the list in exit_problems. Back returns to "
        "the previous stage; lost closes the opportunity as lost. A stage left open longer than "
        "its max_days calls crm.notify_stale_deal (non-interrupting timer). Leaving the last "
        "stage closes the opportunity as won. The variable outcome (won/lost) is handed back.",
    )
    lane_set = _sub(process, _b("laneSet"), id=f"LaneSet_{pid}")
    lane = _sub(lane_set, _b("lane"), id="Lane_rep", name="Rep")
    for element_id in ids:
        _sub(lane, _b("flowNodeRef"), element_id)
    flows = _plan_flows(pipeline.stages)
    _refs(_sub(process, _b("startEvent"), id="start", name="Opportunity opened"), flows, "start")
    _refs(_sub(process, _b("exclusiveGateway"), id="merge_lost"), flows, "merge_lost")
    for index in range(len(pipeline.stages)):
        _stage_elements(process, pipeline, index, flows)
    _ending(process, flows, "won", '""', "Won")
    _ending(process, flows, "lost", "lost_reason", "Lost")
    for fid, source, target, name, condition in flows.flows:
        attrs = {
            "id": fid,
            **({"name": name} if name else {}),
            "sourceRef": source,
            "targetRef": target,
        }
        flow = etree.SubElement(process, _b("sequenceFlow"), attrs)
        if condition:
            expr = _sub(flow, _b("conditionExpression"), condition)
            expr.set(f"{{{XSI}}}type", "bpmn:tFormalExpression")
    add_diagram(root, pipeline, [(f[0], f[1], f[2]) for f in flows.flows])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def foreign_elements(content: bytes, pipeline: PipelineSpec) -> list[str]:
    """Return the ids of flow elements in `content` that the generator would not make.

    They come from edits in the admins' modeler; saving from the stage editor drops them.
    """
    root = parse_xml(content).getroot()
    process = root.find(f"{{{BPMN}}}process")
    if process is None or not pipeline.stages:
        return []
    known = set(element_ids(pipeline)) | {f[0] for f in _plan_flows(pipeline.stages).flows}
    found = [
        node.get("id", "")
        for node in process
        if isinstance(node.tag, str)
        and etree.QName(node).localname not in ("laneSet", "documentation", "extensionElements")
        and node.get("id")
    ]
    return [element_id for element_id in found if element_id not in known]
