"""The quote approval table as rows: read from DMN, check, evaluate, and write back to DMN.

Entries follow the dialect SpiffWorkflow 3.2.0 runs (`SpiffWorkflow/dmn/engine/DMNEngine.py`):
an input entry is `-` (any value), a condition completed by the input on its left (`<= 5`,
`> 60`), an expression with `?` standing for the input (`5 < ? <= 15`), or a value compared for
equality (`10`). Entries are Python run in the engine's sandbox. Output entries here are the
boolean columns of `quote_approval_chain` (who approves). Flask-free; no SpiffWorkflow import.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from crm.errors import InvalidInput, msg
from engine.sandbox import check_script
from engine.sandbox_policy import ScriptError
from engine.scripting import SANDBOX
from engine.xmlsafe import parse_xml

ANY = "-"
MAX_ENTRY = 200
MAX_ROWS = 100
# `?` outside quotes, as the library finds it.
_QUESTION = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")
_INPUT_VAR = "dmninputexpr"


@dataclass(frozen=True)
class Column:
    """An input (`discount`) or output (`needs_manager`) column of the table."""

    id: str
    name: str
    label: str


@dataclass(frozen=True)
class ApprovalRow:
    """One rule: input conditions by input name, outputs by output name (True: approves)."""

    id: str | None
    description: str
    conditions: dict[str, str]
    outputs: dict[str, bool]


@dataclass(frozen=True)
class ApprovalTable:
    decision_id: str
    name: str
    inputs: tuple[Column, ...]
    outputs: tuple[Column, ...]
    rows: tuple[ApprovalRow, ...] = field(default_factory=tuple)


def _ns(root: etree._Element) -> dict[str, str]:
    return {"dmn": etree.QName(root).namespace or ""}


def read_approval_table(content: bytes) -> ApprovalTable:
    """Read the first decision table of a DMN document into columns and rows."""
    root = parse_xml(content).getroot()
    ns = _ns(root)
    decision = root.find("dmn:decision", ns)
    table = decision.find("dmn:decisionTable", ns) if decision is not None else None
    if decision is None or table is None:
        raise ValueError("the document has no decision table")
    inputs = tuple(
        Column(
            node.get("id", ""),
            (node.findtext("dmn:inputExpression/dmn:text", "", ns) or "").strip(),
            node.get("label", ""),
        )
        for node in table.iterfind("dmn:input", ns)
    )
    outputs = tuple(
        Column(node.get("id", ""), node.get("name", ""), node.get("label", ""))
        for node in table.iterfind("dmn:output", ns)
    )
    rows = []
    for rule in table.iterfind("dmn:rule", ns):
        entries = [
            (e.findtext("dmn:text", "", ns) or "").rstrip()
            for e in rule.iterfind("dmn:inputEntry", ns)
        ]
        results = [
            (e.findtext("dmn:text", "", ns) or "").strip()
            for e in rule.iterfind("dmn:outputEntry", ns)
        ]
        rows.append(
            ApprovalRow(
                rule.get("id"),
                (rule.findtext("dmn:description", "", ns) or "").strip(),
                {
                    c.name: (entries[i] if i < len(entries) else ANY) or ANY
                    for i, c in enumerate(inputs)
                },
                {c.name: i < len(results) and results[i] == "True" for i, c in enumerate(outputs)},
            )
        )
    return ApprovalTable(
        decision.get("id", ""), decision.get("name", ""), inputs, outputs, tuple(rows)
    )


def _sample(inputs: tuple[Column, ...]) -> dict[str, Any]:
    return {c.name: 1 for c in inputs}


def entry_problem(text: str, column: Column, inputs: tuple[Column, ...]) -> str | None:
    """Return why an input entry would fail in the engine, or None when it is fine."""
    entry = text.rstrip()  # a leading space matters: the input is put right in front of it
    if entry.strip() in ("", ANY):
        return None
    if len(entry) > MAX_ENTRY or "\n" in entry:
        return msg("keep it to one line of at most %(max)s characters", max=MAX_ENTRY)
    sample = _sample(inputs)
    expression, context = _expression(entry, column.name, sample.get(column.name))
    problems = check_script(expression, "eval")
    if problems:
        return msg(
            "'%(entry)s' is not a condition the engine can read (%(detail)s)",
            entry=entry,
            detail=problems[0][1],
        )
    try:
        SANDBOX.evaluate(expression, sample, context)
    except NameError as exc:
        names = ", ".join(c.name for c in inputs)
        if str(exc.name).startswith(column.name):
            return msg(
                "'%(entry)s' joins onto the input name; write ? for the input, e.g. '? in (1, 2)'",
                entry=entry,
            )
        return msg(
            "'%(entry)s' uses the unknown name '%(name)s'; use numbers and %(names)s",
            entry=entry,
            name=exc.name,
            names=names,
        )
    except (ScriptError, ArithmeticError, TypeError, ValueError) as exc:
        return msg("'%(entry)s' cannot be evaluated: %(detail)s", entry=entry, detail=str(exc))
    return None


def _expression(entry: str, input_name: str, value: Any) -> tuple[str, dict[str, Any] | None]:
    """Turn an entry into the expression the library evaluates, and the extra names it needs."""
    if _QUESTION.search(entry):
        return _QUESTION.sub(_INPUT_VAR, entry), {_INPUT_VAR: value}
    try:
        ast.parse(entry)  # the library's test: a complete statement means "equals"
    except SyntaxError:
        # Like the library: the input goes in front of the entry as it stands (`discount<= 5`).
        return input_name + entry, None
    return f"({input_name}) == ({entry})", None


def check_rows(table: ApprovalTable, rows: list[ApprovalRow]) -> None:
    """Refuse rows the engine could not run, naming the row (from 1) and column of each problem.

    Field names are `rows-<row>-<input name>` and `rows-<row>-description`.
    :raises InvalidInput: with every problem found.
    """
    problems: dict[str, list[str]] = {}
    if not rows:
        problems["rows"] = [msg("the table needs at least one row")]
    if len(rows) > MAX_ROWS:
        problems["rows"] = [msg("the table has at most %(max)s rows", max=MAX_ROWS)]
    for number, row in enumerate(rows, start=1):
        if len(row.description) > MAX_ENTRY or "\n" in row.description:
            problems[f"rows-{number}-description"] = [
                msg(
                    "row %(row)s, Description: keep it to one line of at most %(max)s characters",
                    row=number,
                    max=MAX_ENTRY,
                )
            ]
        for column in table.inputs:
            problem = entry_problem(row.conditions.get(column.name, ANY), column, table.inputs)
            if problem:
                label = column.label or column.name
                problems[f"rows-{number}-{column.name}"] = [
                    msg(
                        "row %(row)s, %(label)s: %(problem)s",
                        row=number,
                        label=label,
                        problem=problem,
                    )
                ]
    if problems:
        raise InvalidInput(
            msg("please correct: %(fields)s", fields=", ".join(sorted(problems))), problems
        )


def _row_matches(table: ApprovalTable, row: ApprovalRow, data: dict[str, Any]) -> bool:
    for column in table.inputs:
        entry = row.conditions.get(column.name, ANY).rstrip()
        if entry.strip() in ("", ANY):
            continue
        expression, context = _expression(entry, column.name, data.get(column.name))
        if not SANDBOX.evaluate(expression, dict(data), context):
            return False
    return True


def matching_rows(
    table: ApprovalTable, rows: tuple[ApprovalRow, ...] | list[ApprovalRow], data: dict[str, Any]
) -> list[int]:
    """Return the numbers (from 1) of the rows whose conditions all hold for `data`."""
    return [n for n, row in enumerate(rows, start=1) if _row_matches(table, row, data)]


def approvers_for(
    table: ApprovalTable, rows: tuple[ApprovalRow, ...] | list[ApprovalRow], data: dict[str, Any]
) -> list[str] | None:
    """Return the approval chain (output names set to True) the first matching row gives.

    The hit policy is UNIQUE and the library takes the first match; None when no row matches.
    """
    matched = matching_rows(table, rows, data)
    if not matched:
        return None
    row = rows[matched[0] - 1]
    return [c.name for c in table.outputs if row.outputs.get(c.name)]


def write_approval_table(original: bytes, table: ApprovalTable, rows: list[ApprovalRow]) -> bytes:
    """Return the DMN document with its rules replaced by `rows`; every other part is kept.

    Existing rules keep their ids and entry ids; new rows get fresh `Rule_row_<n>` ids.
    """
    tree = parse_xml(original)
    root = tree.getroot()
    ns = _ns(root)
    node = root.find("dmn:decision/dmn:decisionTable", ns)
    if node is None:
        raise ValueError("the document has no decision table")
    old_rules = {r.get("id"): r for r in node.iterfind("dmn:rule", ns)}
    for rule in old_rules.values():
        node.remove(rule)
    taken = set(old_rules) | {row.id for row in rows if row.id}
    q = ns["dmn"]
    counter = 1
    used: set[str] = set()
    for row in rows:
        reuse = row.id and row.id in old_rules and row.id not in used
        rule_id = row.id if reuse else None
        if rule_id is None:
            while f"Rule_row_{counter}" in taken:
                counter += 1
            rule_id = f"Rule_row_{counter}"
            taken.add(rule_id)
        used.add(rule_id)
        old = old_rules.get(rule_id)
        suffix = rule_id.removeprefix("Rule_")
        rule = etree.SubElement(node, f"{{{q}}}rule", id=rule_id)
        if row.description:
            etree.SubElement(rule, f"{{{q}}}description").text = row.description
        old_inputs = old.findall("dmn:inputEntry", ns) if old is not None else []
        old_outputs = old.findall("dmn:outputEntry", ns) if old is not None else []
        for i, column in enumerate(table.inputs):
            entry_id = (
                old_inputs[i].get("id")
                if i < len(old_inputs)
                else f"InputEntry_{suffix}_{column.name}"
            )
            entry = etree.SubElement(rule, f"{{{q}}}inputEntry", id=entry_id)
            etree.SubElement(entry, f"{{{q}}}text").text = (
                row.conditions.get(column.name, ANY).rstrip() or ANY
            )
        for i, column in enumerate(table.outputs):
            entry_id = (
                old_outputs[i].get("id")
                if i < len(old_outputs)
                else f"OutputEntry_{suffix}_{column.name}"
            )
            entry = etree.SubElement(rule, f"{{{q}}}outputEntry", id=entry_id)
            etree.SubElement(entry, f"{{{q}}}text").text = (
                "True" if row.outputs.get(column.name) else "False"
            )
    etree.indent(tree, space="  ")
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
