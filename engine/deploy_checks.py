"""Our own checks on BPMN/DMN documents, run before the library parses them.

They work on the XML so that every problem carries the file, line and element id, and they
report every problem in a document rather than stopping at the first.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree

from engine.operations import registered_operations
from engine.sandbox import check_script

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DMN_NAMESPACES = (
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
)
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}
FORM_PROPERTY = "formJsonSchemaFilename"
UI_FORM_PROPERTY = "formUiSchemaFilename"
MANUAL_TAGS = ("userTask", "manualTask")
# An ISO 8601 duration, date-time or repeating interval written without quotes parses as Python
# (a bare name) or not at all; either way the timer would fail only when the token reaches it.
_ISO_LIKE = re.compile(r"^(R\d*/)?P[0-9YMWDTHS.,]+$|^\d{4}-\d{2}-\d{2}(T[\d:.+\-Z]+)?$", re.I)


@dataclass(frozen=True)
class Problem:
    """One thing wrong (severity "error") or worth knowing ("warning") about a deploy."""

    severity: str
    file: str
    line: int | None
    element_id: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "element_id": self.element_id,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        element = f" [{self.element_id}]" if self.element_id else ""
        return f"{where}{element} {self.severity}: {self.message}"


@dataclass
class DocumentFacts:
    """What a BPMN document declares and references, for checks across the whole deploy."""

    process_ids: dict[str, etree._Element] = field(default_factory=dict)
    called_processes: list[etree._Element] = field(default_factory=list)
    called_decisions: list[tuple[etree._Element, str]] = field(default_factory=list)
    forms: dict[str, list[etree._Element]] = field(default_factory=dict)


FormLoader = Callable[[str], bytes | None]


def is_dmn(root: etree._Element) -> bool:
    return etree.QName(root).namespace in DMN_NAMESPACES


def _owner(node: etree._Element) -> etree._Element:
    """Return the nearest ancestor (or self) with an id: the element a problem belongs to."""
    current: etree._Element | None = node
    # Event definitions' and extensions' ids mean little to a reader: report the BPMN element.
    while current is not None and (
        current.get("id") is None
        or etree.QName(current).localname.endswith("EventDefinition")
        or etree.QName(current).namespace == SPIFF_NS
    ):
        current = current.getparent()
    return current if current is not None else node


class _Checker:
    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems

    def add(
        self, severity: str, node: etree._Element, message: str, line: int | None = None
    ) -> None:
        owner = _owner(node)
        self.problems.append(
            Problem(severity, self.filename, line or node.sourceline, owner.get("id"), message)
        )

    def script(self, node: etree._Element, source: str | None, what: str, mode: str) -> None:
        if not source or not source.strip():
            if mode == "eval":
                self.add("error", node, f"{what} is empty")
            return
        for line, message in check_script(source, mode):
            # Point at the line inside the document, not inside the script.
            at = node.sourceline + (line - 1) if (line and node.sourceline) else node.sourceline
            self.add("error", node, f"{what}: {message}", at)


def check_bpmn(filename: str, root: etree._Element) -> tuple[list[Problem], DocumentFacts]:
    """Check one BPMN document; return its problems and the facts cross-document checks need."""
    problems: list[Problem] = []
    facts = DocumentFacts()
    checker = _Checker(filename, problems)
    for process in root.iterfind("bpmn:process", NS):
        facts.process_ids[process.get("id", "")] = process
    _check_scripts(checker, root)
    _check_timers(checker, root)
    _check_services(checker, root)
    _check_manual_tasks(checker, root, facts)
    facts.called_processes = list(root.iterfind(".//bpmn:callActivity", NS))
    for task in root.iterfind(".//bpmn:businessRuleTask", NS):
        ref = task.findtext("bpmn:extensionElements/spiffworkflow:calledDecisionId", None, NS)
        if not ref:
            checker.add("error", task, "business rule task names no decision (calledDecisionId)")
        else:
            facts.called_decisions.append((task, ref.strip()))
    return problems, facts


def _check_scripts(checker: _Checker, root: etree._Element) -> None:
    for node in root.iterfind(".//bpmn:scriptTask/bpmn:script", NS):
        checker.script(node, node.text, "script", "exec")
    for tag in ("preScript", "postScript"):
        for node in root.iterfind(f".//spiffworkflow:{tag}", NS):
            checker.script(node, node.text, tag, "exec")
    for node in root.iterfind(".//bpmn:sequenceFlow/bpmn:conditionExpression", NS):
        checker.script(node, node.text, "condition", "eval")
    for node in root.iterfind(".//spiffworkflow:messagePayload", NS):
        checker.script(node, node.text, "message payload", "eval")


def _check_timers(checker: _Checker, root: etree._Element) -> None:
    for definition in root.iterfind(".//bpmn:timerEventDefinition", NS):
        expressions = [child for child in definition if isinstance(child.tag, str)]
        if not expressions:
            checker.add("error", definition, "timer has no timeDuration, timeDate or timeCycle")
        for node in expressions:
            _check_timer_expression(checker, node, (node.text or "").strip())


def _check_timer_expression(checker: _Checker, node: etree._Element, text: str) -> None:
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

    if _ISO_LIKE.match(text):
        checker.add("error", node, f'timer expression {text} must be quoted: write "{text}"')
        return
    if check_script(text, "eval"):
        checker.script(node, text, "timer expression", "eval")
        return
    try:
        literal = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return  # an expression over task data; it can only be checked when it runs
    if not isinstance(literal, str):
        checker.add("error", node, f"timer expression {text} is not a string")
        return
    kind = etree.QName(node).localname
    try:
        if kind == "timeCycle":
            TimerEventDefinition.parse_iso_recurring_interval(literal)
        else:
            TimerEventDefinition.parse_time_or_duration(literal)
    except Exception:  # the library raises bare Exception for bad ISO 8601
        checker.add("error", node, f"timer expression {text} is not a valid ISO 8601 {kind}")


def _check_services(checker: _Checker, root: etree._Element) -> None:
    known = registered_operations()
    for operator in root.iterfind(".//spiffworkflow:serviceTaskOperator", NS):
        name = operator.get("id", "")
        operation = known.get(name)
        if operation is None:
            checker.add("error", operator, f"service operator '{name}' is not registered")
            continue
        given = {p.get("id", ""): p for p in operator.iterfind(".//spiffworkflow:parameter", NS)}
        for param_id, param in given.items():
            if param_id not in operation.params:
                checker.add("error", param, f"'{name}' has no parameter '{param_id}'")
            checker.script(param, param.get("value"), f"parameter '{param_id}'", "eval")
        missing = sorted(set(operation.params) - set(given) - operation.optional)
        if missing:
            checker.add("error", operator, f"'{name}' needs parameter(s) {', '.join(missing)}")


def _check_manual_tasks(checker: _Checker, root: etree._Element, facts: DocumentFacts) -> None:
    in_lane = {
        ref.text.strip() for ref in root.iterfind(".//bpmn:lane/bpmn:flowNodeRef", NS) if ref.text
    }
    has_lanes = root.find(".//bpmn:lane", NS) is not None
    for tag in MANUAL_TAGS:
        for task in root.iterfind(f".//bpmn:{tag}", NS):
            if not has_lanes or task.get("id") not in in_lane:
                checker.add("warning", task, "no lane: the task goes to the instance's initiator")
            props = {
                p.get("name"): p.get("value")
                for p in task.iterfind(".//spiffworkflow:properties/spiffworkflow:property", NS)
            }
            form = props.get(FORM_PROPERTY)
            if tag == "userTask" and not form:
                checker.add("warning", task, "no form: a confirmation form shows its instructions")
            for name in (FORM_PROPERTY, UI_FORM_PROPERTY):
                if props.get(name):
                    facts.forms.setdefault(props[name], []).append(task)


def check_forms(
    filename: str, refs: dict[str, list[etree._Element]], load_form: FormLoader
) -> tuple[list[Problem], dict[str, object]]:
    """Load every referenced form; a missing file or an invalid JSON Schema is an error."""
    problems: list[Problem] = []
    loaded: dict[str, object] = {}
    checker = _Checker(filename, problems)
    for form_name, tasks in sorted(refs.items()):
        content = load_form(form_name)
        if content is None:
            for task in tasks:
                checker.add("error", task, f"form file '{form_name}' does not exist")
            continue
        try:
            schema = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            for task in tasks:
                checker.add("error", task, f"form file '{form_name}' is not valid JSON: {exc}")
            continue
        if not form_name.endswith(".uischema.json"):
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.path) or "top level"
                for task in tasks:
                    checker.add(
                        "error",
                        task,
                        f"form '{form_name}' is not a valid JSON Schema at {where}: {exc.message}",
                    )
                continue
        loaded[form_name] = schema
    return problems, loaded


def check_dmn(filename: str, root: etree._Element) -> list[Problem]:
    """Check that every DMN input expression and rule entry compiles in the sandbox."""
    problems: list[Problem] = []
    checker = _Checker(filename, problems)
    ns = {"dmn": etree.QName(root).namespace}
    for node in root.iterfind(".//dmn:inputExpression/dmn:text", ns):
        checker.script(node, node.text, "input expression", "eval")
    for node in root.iterfind(".//dmn:outputEntry/dmn:text", ns):
        text = (node.text or "").strip()
        if text:
            checker.script(node, text, "output entry", "eval")
    return problems
