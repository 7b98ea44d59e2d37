"""Deploy BPMN/DMN files as immutable, numbered process versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.deploy_checks import (
    BPMN_NS,
    FORM_PROPERTY,
    UI_FORM_PROPERTY,
    DocumentFacts,
    FormLoader,
    Problem,
    check_bpmn,
    check_dmn,
    check_forms,
    is_dmn,
)
from engine.errors import Conflict, DeployRejected
from engine.models import Deployment, ProcessDefinition
from engine.specs import SERIALIZER_VERSION, dump_specs
from engine.xmlsafe import UnsafeXml, parse_xml

MAX_FILES = 200


@dataclass(frozen=True)
class DeployedProcess:
    process_id: str
    name: str
    version: int
    definition_id: int
    new: bool


@dataclass(frozen=True)
class DeployResult:
    deployment_id: int
    created: bool
    processes: list[DeployedProcess]
    warnings: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "created": self.created,
            "processes": [p.__dict__ for p in self.processes],
            "warnings": [w.as_dict() for w in self.warnings],
        }


def folder_form_loader(root: Path) -> FormLoader:
    """Return a loader that reads form files below `root` and nowhere else."""
    base = root.resolve()

    def load(name: str) -> bytes | None:
        path = (base / name).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            return None
        return path.read_bytes()

    return load


def collect_files(paths: Iterable[Path]) -> dict[str, bytes]:
    """Read .bpmn and .dmn files, descending into folders; names are relative and sorted."""
    files: dict[str, bytes] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.suffix in (".bpmn", ".dmn") and child.is_file():
                    files[str(child.relative_to(path))] = child.read_bytes()
        else:
            files[path.name] = path.read_bytes()
    return files


def _element_at(tree: etree._ElementTree, line: int | None) -> str | None:
    if line is None:
        return None
    for node in tree.iter():
        if isinstance(node.tag, str) and node.sourceline == line and node.get("id"):
            return node.get("id")
    return None


def _xsd_problems(name: str, tree: etree._ElementTree) -> list[Problem]:
    VALIDATOR.preprocess(tree)
    if VALIDATOR.validator.validate(tree):
        return []
    return [
        Problem(
            "error", name, err.line, _element_at(tree, err.line), f"not valid BPMN: {err.message}"
        )
        for err in VALIDATOR.validator.error_log
    ]


def _library_problem(name: str, exc: Exception) -> Problem:
    if isinstance(exc, ValidationException):
        line = exc.line_number if isinstance(exc.line_number, int) else None
        return Problem("error", exc.file_name or name, line, exc.id or None, str(exc.args[0]))
    return Problem("error", name, None, None, str(exc))


@dataclass
class _Bundle:
    bpmn: dict[str, tuple[etree._ElementTree, DocumentFacts]] = field(default_factory=dict)
    dmn: dict[str, etree._ElementTree] = field(default_factory=dict)
    forms: dict[str, object] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def _read_documents(files: dict[str, bytes], load_form: FormLoader) -> _Bundle:
    bundle = _Bundle()
    for name, content in sorted(files.items()):
        try:
            tree = parse_xml(content)
        except UnsafeXml as exc:
            bundle.problems.append(Problem("error", name, exc.line, None, str(exc)))
            continue
        root = tree.getroot()
        if is_dmn(root):
            bundle.problems += check_dmn(name, root)
            bundle.dmn[name] = tree
        elif etree.QName(root).namespace == BPMN_NS:
            xsd = _xsd_problems(name, tree)
            problems, facts = check_bpmn(name, root)
            bundle.problems += xsd + problems
            form_problems, forms = check_forms(name, facts.forms, load_form)
            bundle.problems += form_problems
            bundle.forms.update(forms)
            if not xsd:
                bundle.bpmn[name] = (tree, facts)
        else:
            bundle.problems.append(Problem("error", name, 1, None, "not a BPMN or DMN document"))
    _check_references(bundle)
    return bundle


def _check_references(bundle: _Bundle) -> None:
    process_ids = {pid for _, facts in bundle.bpmn.values() for pid in facts.process_ids}
    decision_ids = {
        d.get("id") for tree in bundle.dmn.values() for d in tree.getroot().iter("{*}decision")
    }
    for name, (_, facts) in bundle.bpmn.items():
        for call in facts.called_processes:
            target = call.get("calledElement")
            if target not in process_ids:
                bundle.problems.append(
                    Problem(
                        "error",
                        name,
                        call.sourceline,
                        call.get("id"),
                        f"calls process '{target}', which is not in this deploy",
                    )
                )
        for task, ref in facts.called_decisions:
            if ref not in decision_ids:
                bundle.problems.append(
                    Problem(
                        "error",
                        name,
                        task.sourceline,
                        task.get("id"),
                        f"calls decision '{ref}', which is not in this deploy",
                    )
                )


def _parse_specs(bundle: _Bundle) -> dict[str, tuple[Any, dict[str, Any], str]]:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    for name, tree in bundle.dmn.items():
        try:
            parser.add_dmn_xml(tree.getroot(), filename=name)
        except (SpiffWorkflowException, ValueError, KeyError) as exc:
            bundle.problems.append(_library_problem(name, exc))
    for name, (tree, _) in bundle.bpmn.items():
        try:
            parser.add_bpmn_xml(tree, filename=name)
        except (SpiffWorkflowException, ValueError, KeyError) as exc:
            bundle.problems.append(_library_problem(name, exc))
    specs: dict[str, tuple[Any, dict[str, Any], str]] = {}
    for name, (_, facts) in bundle.bpmn.items():
        for process_id in facts.process_ids:
            process_parser = parser.get_process_parser(process_id)
            if process_parser is None or not process_parser.process_executable:
                continue
            try:
                spec = parser.get_spec(process_id)
                subprocess_specs = parser.get_subprocess_specs(process_id)
            except (SpiffWorkflowException, ValueError, KeyError, AssertionError) as exc:
                bundle.problems.append(_library_problem(name, exc))
                continue
            specs[process_id] = (spec, subprocess_specs, name)
    return specs


def _forms_of(specs: Iterable[Any], available: dict[str, object]) -> dict[str, object]:
    forms: dict[str, object] = {}
    for spec in specs:
        for task_spec in spec.task_specs.values():
            props = getattr(task_spec, "extensions", {}).get("properties", {})
            for key in (FORM_PROPERTY, UI_FORM_PROPERTY):
                if props.get(key) in available:
                    forms[props[key]] = available[props[key]]
    return forms


def _sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def deploy_files(
    session: Session,
    actor: str | None,
    files: dict[str, bytes],
    *,
    load_form: FormLoader,
    now: datetime,
    comment: str | None = None,
) -> DeployResult:
    """Validate every file, then store a new version of each changed process.

    :raises DeployRejected: with every error found; nothing is stored.
    """
    if not files:
        raise DeployRejected([Problem("error", "", None, None, "no .bpmn or .dmn files given")])
    if len(files) > MAX_FILES:
        raise DeployRejected([Problem("error", "", None, None, f"more than {MAX_FILES} files")])
    bundle = _read_documents(files, load_form)
    specs = _parse_specs(bundle) if not bundle.errors else {}
    if bundle.errors:
        raise DeployRejected(bundle.problems)
    warnings = [p for p in bundle.problems if p.severity == "warning"]

    sources = {name: content.decode("utf-8") for name, content in files.items()}
    sources.update({f"forms/{k}": json.dumps(v, sort_keys=True) for k, v in bundle.forms.items()})
    content_hash = _sha256(json.dumps(sources, sort_keys=True))
    existing = session.scalar(select(Deployment).where(Deployment.content_hash == content_hash))
    if existing is not None:
        return DeployResult(existing.id, False, _latest_of(session, sorted(specs)), warnings)

    deployment = Deployment(
        content_hash=content_hash,
        deployed_by=actor,
        deployed_at=now,
        comment=comment,
        sources=sources,
        warnings={"items": [w.as_dict() for w in warnings]},
    )
    session.add(deployment)
    session.flush()
    processes = [
        _store_version(session, deployment, process_id, spec, subs, source, bundle.forms, now)
        for process_id, (spec, subs, source) in sorted(specs.items())
    ]
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("another deploy of the same processes ran at the same time; retry") from exc
    return DeployResult(deployment.id, True, processes, warnings)


def _store_version(
    session: Session,
    deployment: Deployment,
    process_id: str,
    spec: Any,
    subprocess_specs: dict[str, Any],
    source: str,
    forms: dict[str, object],
    now: datetime,
) -> DeployedProcess:
    spec_json = dump_specs(spec, subprocess_specs)
    own_forms = _forms_of([spec, *subprocess_specs.values()], forms)
    spec_hash = _sha256(spec_json + json.dumps(own_forms, sort_keys=True))
    latest = _latest_definition(session, process_id)
    if latest is not None and latest.spec_hash == spec_hash:
        return DeployedProcess(process_id, latest.name, latest.version, latest.id, False)
    definition = ProcessDefinition(
        process_id=process_id,
        name=spec.description or process_id,
        version=(latest.version + 1) if latest else 1,
        spec_hash=spec_hash,
        deployment_id=deployment.id,
        source_file=source,
        spec_json=spec_json,
        forms=own_forms,
        serializer_version=SERIALIZER_VERSION,
        created_at=now,
    )
    session.add(definition)
    session.flush()
    return DeployedProcess(process_id, definition.name, definition.version, definition.id, True)


_LATEST_DEFINITION = (
    select(ProcessDefinition)
    .where(ProcessDefinition.process_id == bindparam("process_id"))
    .order_by(ProcessDefinition.version.desc())
    .limit(1)
)


def _latest_definition(session: Session, process_id: str) -> ProcessDefinition | None:
    return session.scalar(_LATEST_DEFINITION, {"process_id": process_id})


def _latest_of(session: Session, process_ids: list[str]) -> list[DeployedProcess]:
    result = []
    for process_id in process_ids:
        latest = _latest_definition(session, process_id)
        if latest is not None:
            result.append(
                DeployedProcess(process_id, latest.name, latest.version, latest.id, False)
            )
    return result


def latest_definition(session: Session, process_id: str) -> ProcessDefinition | None:
    """Return the newest deployed version of a process, or None."""
    return _latest_definition(session, process_id)


def definition_count(session: Session) -> int:
    """Return how many process versions are deployed."""
    return session.scalar(select(func.count()).select_from(ProcessDefinition)) or 0


def latest_definitions(session: Session) -> list[ProcessDefinition]:
    """Return the newest version of every deployed process, by process id."""
    newest = (
        select(ProcessDefinition.process_id, func.max(ProcessDefinition.version).label("version"))
        .group_by(ProcessDefinition.process_id)
        .subquery()
    )
    return list(
        session.scalars(
            select(ProcessDefinition)
            .join(
                newest,
                (ProcessDefinition.process_id == newest.c.process_id)
                & (ProcessDefinition.version == newest.c.version),
            )
            .order_by(ProcessDefinition.process_id)
        )
    )
