"""Open, check, save and deploy a BPMN file of the working copy, and roll a process back.

Saving writes the file to processes/ only when the whole set (this file with every other file of
processes/, its DMN and the forms it names) passes the deploy checks: processes/ is what the next
deploy reads, so an invalid file there would block every deploy. Deploying runs the same checks
through `engine.deploy.deploy_files` and, when it succeeds, writes the file too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.designer.access import require_designer
from crm.designer.workspace import Workspace, list_files, record_change, resolve, sha256, write_file
from crm.directory.models import User
from crm.errors import Conflict, NotFound, fields_error, msg
from engine.deploy import DeployResult, deploy_files
from engine.deploy_checks import BPMN_NS, Problem
from engine.deploy_preview import check_deploy, place_problems, unconnected_warnings
from engine.errors import DeployRejected
from engine.models import ProcessDefinition
from engine.xmlsafe import UnsafeXml, parse_xml

BPMN_SUFFIX = (".bpmn",)
MAX_COMMENT = 2000


@dataclass(frozen=True)
class ProcessFile:
    """A .bpmn file of the working copy, the processes it declares and their newest versions."""

    name: str
    process_ids: list[str]
    newest: dict[str, int] = field(default_factory=dict)
    # The file differs from the source of the newest deployed version of its processes.
    undeployed: bool = False


def _process_ids(content: bytes) -> list[str]:
    try:
        root = parse_xml(content).getroot()
    except UnsafeXml:
        return []
    return [p.get("id", "") for p in root.iterfind(f"{{{BPMN_NS}}}process")]


def _newest(session: Session, process_id: str) -> ProcessDefinition | None:
    return session.scalar(
        select(ProcessDefinition)
        .where(ProcessDefinition.process_id == process_id)
        .order_by(ProcessDefinition.version.desc())
        .limit(1)
    )


def list_process_files(session: Session, actor: User, workspace: Workspace) -> list[ProcessFile]:
    """Return every .bpmn file of processes/ with its processes' newest deployed versions."""
    require_designer(actor)
    files = []
    for name in list_files(workspace.processes_dir, BPMN_SUFFIX):
        content = (workspace.processes_dir / name).read_bytes()
        newest, undeployed = {}, False
        process_ids = _process_ids(content)
        for process_id in process_ids:
            definition = _newest(session, process_id)
            if definition is None:
                undeployed = True
                continue
            newest[process_id] = definition.version
            deployed = definition.deployment.sources.get(definition.source_file)
            undeployed = undeployed or deployed != content.decode("utf-8", "replace")
        files.append(ProcessFile(name, process_ids, newest, undeployed))
    return files


def read_process_file(actor: User, workspace: Workspace, name: str) -> str:
    """Return the text of a working .bpmn file."""
    require_designer(actor)
    return resolve(workspace.processes_dir, name, BPMN_SUFFIX).read_text("utf-8")


def _edited_set(workspace: Workspace, name: str, content: bytes) -> dict[str, bytes]:
    resolve(workspace.processes_dir, name, BPMN_SUFFIX, must_exist=False)
    files = workspace.working_set()
    files[name] = content
    return files


def check_process_edit(
    actor: User, workspace: Workspace, name: str, content: bytes
) -> list[Problem]:
    """Return every problem a deploy of processes/ with `name` replaced by `content` would find."""
    require_designer(actor)
    return check_deploy(_edited_set(workspace, name, content), workspace.form_loader())


def save_process_file(
    session: Session, actor: User, workspace: Workspace, name: str, content: bytes, now: datetime
) -> list[Problem]:
    """Write `content` to processes/`name` if the set passes the deploy checks; return warnings.

    :raises DeployRejected: with every problem; nothing is written.
    """
    problems = check_process_edit(actor, workspace, name, content)
    if any(p.severity == "error" for p in problems):
        raise DeployRejected(problems)
    path = resolve(workspace.processes_dir, name, BPMN_SUFFIX)
    before = sha256(path.read_bytes())
    record_change(session, actor, "save_process", name, now, before=before, after=sha256(content))
    write_file(path, content)
    return [p for p in problems if p.severity == "warning"]


def _comment(text: str) -> str:
    text = text.strip()
    if not text:
        raise fields_error(comment="say why you deploy this version")
    if len(text) > MAX_COMMENT:
        raise fields_error(
            comment=msg("keep the comment under %(max)s characters", max=MAX_COMMENT)
        )
    return text


def _deploy(
    session: Session,
    actor: User,
    workspace: Workspace,
    files: dict[str, bytes],
    comment: str,
    now: datetime,
) -> DeployResult:
    try:
        result = deploy_files(
            session,
            actor.username,
            files,
            load_form=workspace.form_loader(),
            now=now,
            comment=comment,
        )
    except DeployRejected as exc:
        raise DeployRejected(place_problems(exc.problems, files)) from exc
    if not result.created:
        raise Conflict(
            msg(
                "these files are exactly those of deployment %(id)s; nothing new was deployed",
                id=result.deployment_id,
            )
        )
    return result


def deploy_process_edit(
    session: Session,
    actor: User,
    workspace: Workspace,
    name: str,
    content: bytes,
    comment: str,
    now: datetime,
) -> DeployResult:
    """Deploy processes/ with `name` replaced by `content`, then write the file.

    :raises DeployRejected: with every problem; nothing is stored or written.
    """
    require_designer(actor)
    text = _comment(comment)
    files = _edited_set(workspace, name, content)
    path = resolve(workspace.processes_dir, name, BPMN_SUFFIX, must_exist=False)
    before = sha256(path.read_bytes()) if path.is_file() else None
    result = _deploy(session, actor, workspace, files, text, now)
    record_change(
        session,
        actor,
        "deploy",
        name,
        now,
        comment=text,
        deployment_id=result.deployment_id,
        before=before,
        after=sha256(content),
        versions={p.process_id: p.version for p in result.processes if p.new},
    )
    write_file(path, content)
    return replace(result, warnings=result.warnings + unconnected_warnings(name, content))


def _marked(source: str, version: int, actor: User, now: datetime) -> bytes:
    # A deploy identical to an earlier one is a no-op by content hash; the note makes the rolled
    # back file new content while leaving every element (and the parsed spec) as it was.
    who = actor.username.replace("--", "-")
    note = f"<!-- rollback to v{version} by {who} at {now:%Y-%m-%dT%H:%MZ} -->"
    return (source.rstrip() + "\n" + note + "\n").encode("utf-8")


def rollback_process(
    session: Session,
    actor: User,
    workspace: Workspace,
    definition_id: int,
    comment: str,
    now: datetime,
) -> DeployResult:
    """Deploy an old version's source file as the newest version and write it to processes/.

    The rest of the set comes from processes/ as it is now, and forms from forms/.
    """
    require_designer(actor)
    text = _comment(comment)
    old = session.get(ProcessDefinition, definition_id)
    if old is None:
        raise NotFound(msg("process version %(id)s does not exist", id=definition_id))
    source = old.deployment.sources.get(old.source_file)
    if source is None:
        raise NotFound(
            msg(
                "the source of %(process)s v%(version)s was not kept",
                process=old.process_id,
                version=old.version,
            )
        )
    content = _marked(source, old.version, actor, now)
    files = _edited_set(workspace, old.source_file, content)
    result = _deploy(session, actor, workspace, files, f"rollback to v{old.version}: {text}", now)
    if not any(p.process_id == old.process_id and p.new for p in result.processes):
        raise Conflict(
            msg(
                "%(process)s v%(version)s is already the newest version",
                process=old.process_id,
                version=old.version,
            )
        )
    record_change(
        session,
        actor,
        "rollback",
        old.source_file,
        now,
        comment=text,
        deployment_id=result.deployment_id,
        process_id=old.process_id,
        to_version=old.version,
        versions={p.process_id: p.version for p in result.processes if p.new},
    )
    path = resolve(workspace.processes_dir, old.source_file, BPMN_SUFFIX, must_exist=False)
    write_file(path, content)
    return result
