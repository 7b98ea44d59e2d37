"""Run every deploy check on a set of files without storing anything.

The checks are the deploy's own (`engine.deploy`): the safe XML parser, the XSD, our checks and the
library's parser, on the whole set at once, so a preview passes exactly when a deploy would.
"""

from __future__ import annotations

from dataclasses import replace

from lxml import etree

from engine.deploy import MAX_FILES, _parse_specs, _read_documents
from engine.deploy_checks import BPMN_NS, FormLoader, Problem
from engine.xmlsafe import UnsafeXml, parse_xml

_DI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
_FLOW_CONTAINERS = ("process", "subProcess", "transaction")
# Flow nodes that only run when a sequence flow reaches them.
_FLOW_NODES = {
    "task",
    "userTask",
    "manualTask",
    "scriptTask",
    "serviceTask",
    "sendTask",
    "receiveTask",
    "businessRuleTask",
    "callActivity",
    "subProcess",
    "transaction",
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
    "eventBasedGateway",
    "complexGateway",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "endEvent",
}


def check_deploy(files: dict[str, bytes], load_form: FormLoader) -> list[Problem]:
    """Return every problem (errors and warnings) a deploy of `files` would report."""
    if not files:
        return [Problem("error", "", None, None, "no .bpmn or .dmn files given")]
    if len(files) > MAX_FILES:
        return [Problem("error", "", None, None, f"more than {MAX_FILES} files")]
    bundle = _read_documents(files, load_form)
    if not bundle.errors:
        _parse_specs(bundle)
    unconnected = [
        w for name in sorted(bundle.bpmn) for w in unconnected_warnings(name, files[name])
    ]
    return place_problems(bundle.problems, files) + unconnected


def unconnected_warnings(name: str, content: bytes) -> list[Problem]:
    """Warn about flow nodes no sequence flow leads to: the engine leaves them out of the version.

    Start events, boundary events and compensation handlers start without an incoming flow.
    """
    try:
        root = parse_xml(content).getroot()
    except UnsafeXml:
        return []
    targets = {flow.get("targetRef") for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow")}
    warnings = []
    for node in root.iter():
        if not isinstance(node.tag, str) or etree.QName(node).namespace != BPMN_NS:
            continue
        kind = etree.QName(node).localname
        parent = node.getparent()
        in_flow = parent is not None and etree.QName(parent).localname in _FLOW_CONTAINERS
        if not in_flow or kind not in _FLOW_NODES or node.get("id") in targets:
            continue
        if node.get("isForCompensation") == "true" or node.get("triggeredByEvent") == "true":
            continue
        if node.find(f"{{{BPMN_NS}}}linkEventDefinition") is not None:
            continue
        warnings.append(
            Problem(
                "warning",
                name,
                node.sourceline,
                node.get("id"),
                "no sequence flow leads here: it never runs and is left out of the version",
            )
        )
    return warnings


def place_problems(problems: list[Problem], files: dict[str, bytes]) -> list[Problem]:
    """Return the problems, each with the element written around its line where it named none."""
    return [_placed(problem, files) for problem in problems]


def _placed(problem: Problem, files: dict[str, bytes]) -> Problem:
    """Give a problem that has a line but no element the BPMN element written around that line."""
    if problem.element_id or not problem.line or problem.file not in files:
        return problem
    try:
        root = parse_xml(files[problem.file]).getroot()
    except UnsafeXml:
        return problem
    last: etree._Element | None = None
    for node in root.iter():
        if isinstance(node.tag, str) and node.sourceline is not None:
            if node.sourceline > problem.line:
                break
            last = node
    found = _owner_id(last)
    return replace(problem, element_id=found) if found else problem


def _owner_id(node: etree._Element | None) -> str | None:
    """Return the id of the BPMN element `node` belongs to (a diagram shape names its element)."""
    while node is not None:
        qname = etree.QName(node)
        if qname.namespace == _DI_NS and node.get("bpmnElement"):
            return node.get("bpmnElement")
        if qname.namespace == BPMN_NS and node.get("id"):
            if qname.localname in ("process", "definitions", "collaboration"):
                return None
            if not qname.localname.endswith("EventDefinition"):
                return node.get("id")
        node = node.getparent()
    return None
