"""Version history of a process, the source of any version, and the diff of two versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.designer.access import require_designer
from crm.designer.models import DesignerAudit
from crm.directory.models import User
from crm.errors import InvalidInput, NotFound, msg
from engine.bpmn_diff import BpmnDiff, diff_bpmn
from engine.models import Deployment, ProcessDefinition
from engine.xmlsafe import UnsafeXml

RECENT_CHANGES = 20


@dataclass(frozen=True)
class ProcessVersion:
    """One deployed version of a process, with who deployed it, when and why."""

    definition_id: int
    process_id: str
    name: str
    version: int
    source_file: str
    deployment_id: int
    deployed_by: str | None
    deployed_at: datetime
    comment: str | None


def _version_of(definition: ProcessDefinition, deployment: Deployment) -> ProcessVersion:
    return ProcessVersion(
        definition.id,
        definition.process_id,
        definition.name,
        definition.version,
        definition.source_file,
        deployment.id,
        deployment.deployed_by,
        deployment.deployed_at,
        deployment.comment,
    )


def process_versions(session: Session, actor: User, process_id: str) -> list[ProcessVersion]:
    """Return every version of a process, newest first.

    :raises NotFound: when the process was never deployed.
    """
    require_designer(actor)
    rows = session.execute(
        select(ProcessDefinition, Deployment)
        .join(Deployment, ProcessDefinition.deployment_id == Deployment.id)
        .where(ProcessDefinition.process_id == process_id)
        .order_by(ProcessDefinition.version.desc())
    ).all()
    if not rows:
        raise NotFound(msg("process '%(id)s' has no deployed version", id=process_id))
    return [_version_of(definition, deployment) for definition, deployment in rows]


def version_source(session: Session, actor: User, definition_id: int) -> tuple[ProcessVersion, str]:
    """Return a deployed version and the text of the BPMN file it was deployed from."""
    require_designer(actor)
    definition = session.get(ProcessDefinition, definition_id)
    if definition is None:
        raise NotFound(msg("process version %(id)s does not exist", id=definition_id))
    source = definition.deployment.sources.get(definition.source_file)
    if source is None:
        raise NotFound(
            msg(
                "the source of %(process)s v%(version)s was not kept",
                process=definition.process_id,
                version=definition.version,
            )
        )
    return _version_of(definition, definition.deployment), source


def diff_versions(
    session: Session, actor: User, old_id: int, new_id: int
) -> tuple[ProcessVersion, ProcessVersion, BpmnDiff]:
    """Compare two deployed versions of the same process, element by element."""
    old, old_source = version_source(session, actor, old_id)
    new, new_source = version_source(session, actor, new_id)
    if old.process_id != new.process_id:
        raise InvalidInput(
            "compare two versions of the same process",
            {
                "new": [
                    msg(
                        "v%(version)s is a version of %(process)s, not %(other)s",
                        version=new.version,
                        process=new.process_id,
                        other=old.process_id,
                    )
                ]
            },
        )
    try:
        diff = diff_bpmn(old_source, new_source)
    except UnsafeXml as exc:  # only a stored source edited outside Stagecraft could do this
        raise InvalidInput(
            msg("a stored version cannot be read: %(detail)s", detail=str(exc))
        ) from exc
    return old, new, diff


def recent_changes(
    session: Session, actor: User, limit: int = RECENT_CHANGES
) -> list[DesignerAudit]:
    """Return the newest entries of the designer's audit trail."""
    require_designer(actor)
    return list(
        session.scalars(
            select(DesignerAudit)
            .order_by(DesignerAudit.at.desc(), DesignerAudit.id.desc())
            .limit(limit)
        )
    )
