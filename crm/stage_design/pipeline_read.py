"""Read a pipeline's stage list back from its BPMN (shipped, generated or edited in the modeler)."""

from __future__ import annotations

import ast
import re

from lxml import etree

from crm.stage_design.stages import PipelineSpec, StageSpec, default_criteria
from engine.xmlsafe import parse_xml

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
STALE_TEXT = "is reported as stale to you and your manager."
CRITERIA_LEAD = "To leave this stage"


def read_pipeline_bpmn(content: bytes, pipeline_key: str) -> PipelineSpec:
    """Read the stage list of a pipeline's BPMN (shipped, generated or edited in the modeler).

    Stages are the user tasks with a `stage` property, in the order the advance path reaches
    them. Criteria come from the exit check's `criteria` parameter, else the shipped defaults.
    """
    root = parse_xml(content).getroot()
    ns = {"bpmn": BPMN, "spiffworkflow": SPIFF}
    process = root.find(".//bpmn:process", ns)
    if process is None:
        raise ValueError("the document has no process")
    tasks = {}
    for task in process.iterfind("bpmn:userTask", ns):
        props = {
            p.get("name"): p.get("value") for p in task.iterfind(".//spiffworkflow:property", ns)
        }
        if props.get("stage"):
            tasks[task.get("id")] = (task, props)
    checks = _criteria_by_stage(process, ns)
    stages = []
    for task_id in _advance_order(process, ns, list(tasks)):
        task, props = tasks[task_id]
        key = str(props["stage"])
        instructions = task.findtext(".//spiffworkflow:instructionsForEndUser", "", ns)
        stages.append(
            StageSpec(
                key=key,
                label=task.get("name") or key,
                win_rate=_int(props.get("win_rate")),
                max_days=_int(props.get("max_days"), 1),
                criteria=checks.get(key, default_criteria(key)),
                guidance=guidance_of(instructions),
            )
        )
    return PipelineSpec(pipeline_key, process.get("name") or process.get("id", ""), tuple(stages))


def _int(value: str | None, fallback: int = 0) -> int:
    try:
        return int(str(value))
    except ValueError:
        return fallback


def _criteria_by_stage(process: etree._Element, ns: dict[str, str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for operator in process.iterfind(".//spiffworkflow:serviceTaskOperator", ns):
        if operator.get("id") != "crm.check_stage_exit":
            continue
        params = {
            p.get("id"): p.get("value") for p in operator.iterfind(".//spiffworkflow:parameter", ns)
        }
        try:
            stage = ast.literal_eval(params.get("stage") or "")
            criteria = params.get("criteria")
            if isinstance(stage, str) and criteria is not None:
                found[stage] = tuple(str(c) for c in ast.literal_eval(criteria))
        except (ValueError, SyntaxError):
            continue  # an expression, not a literal: the stage keeps the shipped defaults
    return found


def _advance_order(process: etree._Element, ns: dict[str, str], task_ids: list[str]) -> list[str]:
    """Follow default (or single) flows from the start event; tasks not reached keep doc order."""
    flows: dict[str, list[str]] = {}
    targets: dict[str, str] = {}
    for flow in process.iterfind("bpmn:sequenceFlow", ns):
        flows.setdefault(flow.get("sourceRef", ""), []).append(flow.get("id", ""))
        targets[flow.get("id", "")] = flow.get("targetRef", "")
    defaults = {n.get("id"): n.get("default") for n in process.iter() if n.get("default")}
    start = process.find("bpmn:startEvent", ns)
    order: list[str] = []
    current = start.get("id") if start is not None else None
    seen: set[str] = set()
    while current and current not in seen:
        seen.add(current)
        if current in task_ids:
            order.append(current)
        outgoing = flows.get(current, [])
        chosen = defaults.get(current) or (outgoing[0] if len(outgoing) == 1 else None)
        current = targets.get(chosen or "")
    return order + [t for t in task_ids if t not in order]


def guidance_of(instructions: str) -> str:
    """Return the stage's own advice from its instructions (the paragraphs after the win rate)."""
    paragraphs = [p.strip() for p in instructions.split("\n\n")]
    kept = []
    for paragraph in paragraphs[1:]:
        if paragraph.startswith("{%") or paragraph.startswith("Choose *Advance*"):
            break
        if STALE_TEXT in paragraph or paragraph.startswith("Win rate"):
            continue
        text = re.sub(rf"\s*{CRITERIA_LEAD}[^.]*\.", "", paragraph).strip()
        if text:
            kept.append(text)
    return "\n\n".join(kept)
